//! Object keys of static schemas, written once per thread instead of per event.
//!
//! Built-in and derived kinds describe their fields in a `'static` list: never
//! freed, never changed, so its address names it. The `,"name":` text of each
//! field is kept for the last such list a thread wrote, and an event of that kind
//! copies its keys instead of checking and quoting every name again.

use super::write_key;
use crate::event::schema::FieldDef;
use std::cell::RefCell;

/// The keys of one static field list.
#[derive(Default)]
pub(super) struct Keys {
    /// Address and length of the list they were written for.
    list: Option<(usize, usize)>,
    /// Every key, one after the other.
    text: Vec<u8>,
    /// Where each key ends in `text`.
    ends: Vec<usize>,
}

impl Keys {
    /// The `,"name":` of field `index`.
    #[inline(always)]
    pub(super) fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        self.text.get(start..end)
    }

    fn fill(&mut self, fields: &'static [FieldDef]) {
        let list = Some((fields.as_ptr() as usize, fields.len()));
        if self.list == list {
            return;
        }
        self.text.clear();
        self.ends.clear();
        for f in fields {
            write_key(&mut self.text, &f.name);
            self.ends.push(self.text.len());
        }
        self.list = list;
    }
}

thread_local! {
    static KEYS: RefCell<Keys> = RefCell::new(Keys::default());
}

/// Calls `f` with the keys of `fields`; `None` (and `f` not called) when this
/// thread's keys cannot be had (the thread is exiting, or they are in use).
#[inline]
pub(super) fn with<R>(fields: &'static [FieldDef], f: impl FnOnce(&Keys) -> R) -> Option<R> {
    KEYS.try_with(|keys| {
        let mut keys = keys.try_borrow_mut().ok()?;
        keys.fill(fields);
        Some(f(&keys))
    })
    .ok()
    .flatten()
}
