//! Examples live under `[[example]]` targets; this library is empty.
