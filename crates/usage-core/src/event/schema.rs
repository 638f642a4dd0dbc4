//! Field types and per-kind schemas: what exporters use to create tables and DDL.

use std::borrow::Cow;
use std::fmt;

/// The type of one event field, independent of any backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// UTF-8 text.
    Str,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// 64-bit float; never NaN or infinite (sanitised to 0 when the event is built).
    F64,
    /// Boolean.
    Bool,
    /// A free-form map from string to string (e.g. `network_event.attributes`).
    StrMap,
}

impl FieldType {
    /// The lowercase name used in docs, errors and the JSON schema listing.
    pub const fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::I64 => "i64",
            FieldType::U64 => "u64",
            FieldType::F64 => "f64",
            FieldType::Bool => "bool",
            FieldType::StrMap => "map<string,string>",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One field of a kind's schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldDef {
    /// Field name (also the JSON key and the column name).
    pub name: Cow<'static, str>,
    /// Field type.
    pub ty: FieldType,
    /// Whether the field may be null (an `Option<_>` in Rust).
    pub nullable: bool,
}

impl FieldDef {
    /// A field definition usable in `const`/`static` context.
    pub const fn new(name: &'static str, ty: FieldType, nullable: bool) -> Self {
        FieldDef {
            name: Cow::Borrowed(name),
            ty,
            nullable,
        }
    }
}

/// The schema of one event kind: its name and its ordered fields.
///
/// Every event carries `id`, `ts` and `kind` in addition to these fields, and
/// encoders add the resource attributes (`service_name`, `service_instance_id`).
///
/// ```
/// use usage_core::{EventKind, FieldType, RelayUsage};
/// let schema = RelayUsage::schema();
/// assert_eq!(schema.kind, "relay_usage");
/// let cu = schema.field("cu").unwrap();
/// assert_eq!(cu.ty, FieldType::U64);
/// assert!(!cu.nullable);
/// ```
#[derive(Debug, Clone, Eq)]
pub struct Schema {
    /// Kind name, e.g. `relay_usage`.
    pub kind: Cow<'static, str>,
    /// Fields in encoding order.
    pub fields: Cow<'static, [FieldDef]>,
}

/// Field by field, but a schema and its clones share one static field list, and
/// exporters compare every event's schema with their table's: the same list is
/// equal without reading it.
impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && (std::ptr::eq(self.fields.as_ref(), other.fields.as_ref()) || self.fields == other.fields)
    }
}

/// By value, consistent with `eq` (equal schemas have equal kinds and fields).
impl std::hash::Hash for Schema {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.fields.hash(state);
    }
}

/// Names every encoding uses for the envelope and resource; a kind may not reuse them.
pub const RESERVED_FIELD_NAMES: [&str; 5] = ["id", "ts", "kind", "service_name", "service_instance_id"];

impl Schema {
    /// A schema usable in `static` context.
    pub const fn new_static(kind: &'static str, fields: &'static [FieldDef]) -> Self {
        Schema {
            kind: Cow::Borrowed(kind),
            fields: Cow::Borrowed(fields),
        }
    }

    /// Looks a field up by name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Position of a field by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Checks that the kind name and field names are usable as identifiers in every
    /// backend (ClickHouse columns, Athena columns, Kafka topics, S3 prefixes) and that
    /// no field repeats or shadows an envelope name.
    pub fn validate(&self) -> Result<(), String> {
        if !is_identifier(&self.kind) {
            return Err(format!(
                "kind name {:?} must be 1-64 chars of [a-z0-9_], starting with a letter",
                self.kind
            ));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !is_identifier(&f.name) {
                return Err(format!(
                    "kind `{}`: field name {:?} must be 1-64 chars of [a-z0-9_], starting with a letter",
                    self.kind, f.name
                ));
            }
            if RESERVED_FIELD_NAMES.contains(&f.name.as_ref()) {
                return Err(format!(
                    "kind `{}`: field name `{}` is reserved for the event envelope",
                    self.kind, f.name
                ));
            }
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(format!("kind `{}`: field `{}` is declared twice", self.kind, f.name));
            }
        }
        Ok(())
    }
}

/// Whether `s` can name a kind or a field: 1-64 chars of `[a-z0-9_]`, starting with
/// a letter. Such a name is safe as a path segment, a Kafka topic, an S3 prefix, a
/// SQL identifier and a JSON key; every exporter relies on it.
pub fn is_valid_name(s: &str) -> bool {
    is_identifier(s)
}

fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    static OK: [FieldDef; 2] = [
        FieldDef::new("a", FieldType::Str, false),
        FieldDef::new("b_2", FieldType::U64, true),
    ];

    #[test]
    fn validate_accepts_identifiers() {
        assert_eq!(Schema::new_static("my_kind", &OK).validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_reserved_duplicate_and_bad_names() {
        static RESERVED: [FieldDef; 1] = [FieldDef::new("ts", FieldType::I64, false)];
        static DUP: [FieldDef; 2] = [
            FieldDef::new("a", FieldType::Str, false),
            FieldDef::new("a", FieldType::U64, false),
        ];
        let e = Schema::new_static("k", &RESERVED).validate().unwrap_err();
        assert!(e.contains("`ts` is reserved"), "{e}");
        let e = Schema::new_static("k", &DUP).validate().unwrap_err();
        assert!(e.contains("declared twice"), "{e}");
        let e = Schema::new_static("Bad-Kind", &OK).validate().unwrap_err();
        assert!(e.contains("Bad-Kind"), "{e}");
    }

    #[test]
    fn equality_is_by_value_whether_or_not_the_field_list_is_shared() {
        use std::hash::{BuildHasher, RandomState};
        let shared = Schema::new_static("my_kind", &OK);
        let owned = Schema {
            kind: "my_kind".into(),
            fields: Cow::Owned(OK.to_vec()),
        };
        let hasher = RandomState::new();
        assert_eq!(shared, shared.clone());
        assert_eq!(shared, owned, "same fields in another list");
        assert_eq!(hasher.hash_one(&shared), hasher.hash_one(&owned));
        let mut retyped = OK.to_vec();
        retyped[1].ty = FieldType::I64;
        assert_ne!(
            shared,
            Schema {
                kind: "my_kind".into(),
                fields: Cow::Owned(retyped)
            }
        );
        assert_ne!(shared, Schema::new_static("other_kind", &OK), "same list, another kind");
    }
}
