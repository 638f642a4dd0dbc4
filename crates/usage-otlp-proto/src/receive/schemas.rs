//! The schemas a request's records are read with: registered kinds looked up once
//! per request, kinds this binary does not know inferred from each record's own
//! attributes (valid names only, every field nullable).

use super::view::{Any, Attr};
use crate::ID_ATTRIBUTE;
use std::borrow::Cow;
use std::sync::Arc;
use usage_core::receive::{NameKey, RejectReason};
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
