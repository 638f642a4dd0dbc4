//! The schemas a request's records are read with: registered kinds looked up once
//! per request, kinds this binary does not know inferred from each record's own
//! attributes (valid names only, every field nullable).

use super::view::{Any, Attr};
use crate::ID_ATTRIBUTE;
use std::borrow::Cow;
use std::sync::Arc;
use usage_core::receive::RejectReason;
use usage_core::{kind_schema, FieldDef, FieldType, Schema};

/// A kind's schema, looked up once per request, with where its map fields are.
pub(super) struct KindSchema {
    pub(super) schema: Arc<Schema>,
    pub(super) map_fields: Vec<usize>,
    /// Each field's name as a [`NameKey`], in field order.
    pub(super) names: Vec<NameKey>,
    /// Inferred from a record's attributes (a kind this binary does not know).
    inferred: bool,
}

/// Schemas seen in one request (a registry lookup and an `Arc` per kind, not per record).
#[derive(Default)]
pub(super) struct Schemas {
    known: Vec<KindSchema>,
}

impl Schemas {
    /// The schema a record of `kind` is read with: the registered one, or one
    /// inferred from its own attributes (shared with earlier records of the kind
    /// only when theirs were the same, so no attribute is dropped).
    pub(super) fn for_record(
        &mut self,
        kind: &str,
        attrs: &[Attr<'_>],
        allow_unknown: bool,
    ) -> Result<&KindSchema, (RejectReason, String)> {
        let cached = self.known.iter().position(|k| k.schema.kind == kind);
        if let Some(i) = cached.filter(|&i| !self.known[i].inferred) {
            return Ok(&self.known[i]);
        }
        if cached.is_none() {
            if let Some(registered) = kind_schema(kind) {
                return Ok(self.insert(Arc::new(registered.clone()), false));
            }
        }
        if !allow_unknown {
            return Err((RejectReason::UnknownKind, format!("unknown event kind `{kind:.64}`")));
        }
        let schema = infer(kind, attrs)?;
        match cached {
            Some(i) if *self.known[i].schema == schema => Ok(&self.known[i]),
            Some(i) => {
                self.known.remove(i);
                Ok(self.insert(Arc::new(schema), true))
            }
            None => Ok(self.insert(Arc::new(schema), true)),
        }
    }

    /// Whether `kind` is registered in this binary: looked up in the registry once
    /// per request, not once per record.
    pub(super) fn is_registered(&self, kind: &str) -> bool {
        self.known.iter().any(|k| !k.inferred && k.schema.kind == kind) || kind_schema(kind).is_some()
    }

    fn insert(&mut self, schema: Arc<Schema>, inferred: bool) -> &KindSchema {
        let map_fields = schema
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.ty == FieldType::StrMap)
            .map(|(i, _)| i)
            .collect();
        let names = schema.fields.iter().map(|f| NameKey::of(&f.name)).collect();
        self.known.push(KindSchema {
            schema,
            map_fields,
            names,
            inferred,
        });
        let last = self.known.len() - 1;
        &self.known[last]
    }
}

/// A name's length and two words that hold every byte of a name up to 16 bytes
/// long (its first and last 8, overlapping; shorter names in overlapping halves),
/// compared as three words: attribute keys are matched to field names per attribute
/// of every record, and names of one length (`project`, `success`) differ only in
/// content, which a `memcmp` call per candidate compared before. Equal keys of names
/// up to 16 bytes are equal names; longer ones are compared whole after the keys agree.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct NameKey {
    len: usize,
    first: u64,
    last: u64,
}

impl NameKey {
    #[inline]
    pub(super) fn of(name: &str) -> NameKey {
        let b = name.as_bytes();
        let n = b.len();
        let (first, last) = if n >= 8 {
            (word8(b, 0), word8(b, n - 8))
        } else if n >= 4 {
            let w = u64::from(word4(b, 0)) | u64::from(word4(b, n - 4)) << 32;
            (w, 0)
        } else {
            // Up to 3 bytes: first, middle and last hold them all.
            let at = |i: usize| b.get(i).map_or(0, |&x| u64::from(x));
            (at(0) | at(n / 2) << 8 | at(n.saturating_sub(1)) << 16, 0)
        };
        NameKey { len: n, first, last }
    }

    /// Whether `name`, whose key this is, is `other` (with `other_key` its key).
    #[inline]
    pub(super) fn matches(self, other_key: NameKey, name: &str, other: &str) -> bool {
        self == other_key && (self.len <= 16 || name == other)
    }
}

fn word8(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn word4(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// A schema from the attributes of a kind this binary does not know: each attribute
/// a nullable field of its name (which must be a valid name, as the kind's must).
fn infer(kind: &str, attrs: &[Attr<'_>]) -> Result<Schema, (RejectReason, String)> {
    let mut fields = Vec::with_capacity(attrs.len());
    for kv in attrs.iter().filter(|kv| kv.key != ID_ATTRIBUTE) {
        let ty = match kv.value {
            Some(Any::Str(_)) | None => FieldType::Str,
            Some(Any::Bool(_)) => FieldType::Bool,
            Some(Any::Int(_)) => FieldType::I64,
            Some(Any::Double(_)) => FieldType::F64,
            Some(Any::Other(what)) => {
                return Err((
                    RejectReason::WrongType,
                    format!(
                        "attribute `{:.64}`: {what} is not a field type of an inferred kind",
                        kv.key
                    ),
                ))
            }
        };
        fields.push(FieldDef {
            name: Cow::Owned(kv.key.to_string()),
            ty,
            nullable: true,
        });
    }
    let schema = Schema {
        kind: Cow::Owned(kind.to_string()),
        fields: Cow::Owned(fields),
    };
    schema.validate().map_err(|m| (RejectReason::BadName, m))?;
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::NameKey;

    #[test]
    fn name_keys_match_exactly_the_equal_names() {
        // Every length up to 20, and each name changed at each position in turn.
        let mut names: Vec<String> = Vec::new();
        for len in 0..=20usize {
            let base: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            names.push(base.clone());
            for at in 0..len {
                let mut b = base.clone().into_bytes();
                b[at] = b'_';
                names.push(String::from_utf8(b).unwrap());
            }
        }
        names.extend(
            [
                "event.id",
                "project",
                "success",
                "api_method",
                "latency_ms",
                "is_archive",
            ]
            .map(String::from),
        );
        for a in &names {
            for b in &names {
                let matched = NameKey::of(a).matches(NameKey::of(b), a, b);
                assert_eq!(matched, a == b, "{a:?} vs {b:?}");
            }
        }
    }
}
