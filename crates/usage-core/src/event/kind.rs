//! Event kinds: the object-safe [`EventData`] view exporters read, the static
//! [`EventKind`] side users implement (via [`usage_event!`](crate::usage_event)),
//! and the registry of every kind linked into the binary.

use super::schema::Schema;
use super::value::Value;
use std::any::Any;
use std::fmt;

/// An event's payload as exporters see it: a schema plus values in schema order.
///
/// Implemented by every kind declared with [`usage_event!`](crate::usage_event) and
/// by [`Record`](crate::Record) (kinds decoded at run time).
pub trait EventData: Any + Send + Sync + fmt::Debug {
    /// The schema of this event's kind.
    fn dyn_schema(&self) -> &Schema;
    /// Calls `f` once per field, in schema order.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(Value<'a>));
    /// The field at `index` in schema order. Payloads that decode as they visit
    /// stop at the field asked for.
    #[doc(hidden)]
    fn field_at(&self, index: usize) -> Option<Value<'_>> {
        let mut out = None;
        let mut i = 0;
        self.visit(&mut |v| {
            if i == index {
                out = Some(v);
            }
            i += 1;
        });
        out
    }
    /// The schema, when it lives as long as the program (kinds known at compile
    /// time): the spool recognises it by its address.
    #[doc(hidden)]
    fn static_schema(&self) -> Option<&'static Schema> {
        None
    }
    /// The schema, when the payload shares it (kinds decoded at run time): the spool
    /// recognises it by its address, holding a reference so the address is not reused.
    #[doc(hidden)]
    fn shared_schema(&self) -> Option<&std::sync::Arc<Schema>> {
        None
    }
    /// Heap bytes owned by the payload (for the queue's byte bound).
    fn heap_bytes(&self) -> usize;
    /// Clones into a box.
    fn clone_boxed(&self) -> Box<dyn EventData>;
    /// For downcasting to the concrete kind.
    fn as_any(&self) -> &dyn Any;
}

/// A kind known at compile time. Use [`usage_event!`](crate::usage_event) to implement it.
pub trait EventKind: EventData + Sized {
    /// The kind's schema.
    fn schema() -> &'static Schema;
    /// Normalises values when the event is built (non-finite floats become 0).
    fn sanitize(&mut self);
    #[doc(hidden)]
    fn __into_payload(self) -> crate::__private::Payload {
        crate::__private::Payload::Boxed(Box::new(self))
    }
}

/// A kind registered at link time; see [`registered_kinds`].
#[doc(hidden)]
pub struct KindRegistration {
    schema: fn() -> &'static Schema,
}

impl KindRegistration {
    #[doc(hidden)]
    pub const fn new(schema: fn() -> &'static Schema) -> Self {
        KindRegistration { schema }
    }
}

inventory::collect!(KindRegistration);

/// Every event kind linked into this binary (built-ins and `usage_event!` kinds),
/// sorted by name.
pub fn registered_kinds() -> Vec<&'static Schema> {
    let mut v: Vec<&'static Schema> = inventory::iter::<KindRegistration>
        .into_iter()
        .map(|r| (r.schema)())
        .collect();
    v.sort_by(|a, b| a.kind.cmp(&b.kind));
    v.dedup_by(|a, b| a.kind == b.kind);
    v
}

/// The schema of a registered kind, by name.
pub fn kind_schema(kind: &str) -> Option<&'static Schema> {
    inventory::iter::<KindRegistration>
        .into_iter()
        .map(|r| (r.schema)())
        .find(|s| s.kind == kind)
}

/// Checks every registered kind's schema and that no two kinds share a name with
/// different schemas. Pipelines call this when they are built.
pub fn validate_registered_kinds() -> Result<(), String> {
    let mut seen: Vec<&'static Schema> = Vec::new();
    for r in inventory::iter::<KindRegistration> {
        let s = (r.schema)();
        s.validate()?;
        if let Some(prev) = seen.iter().find(|p| p.kind == s.kind) {
            if *prev != s {
                return Err(format!(
                    "event kind `{}` is declared twice with different fields",
                    s.kind
                ));
            }
        }
        seen.push(s);
    }
    Ok(())
}

/// Declares an event kind: a struct whose fields are typed values, with its schema,
/// encoding and registration generated. Emit it exactly like a built-in kind.
///
/// [`#[derive(UsageEvent)]`](crate::UsageEvent) does the same on a struct you write
/// yourself, with per-field options; prefer it. This macro stays for the built-in
/// kinds (which it can store inline) and for code already using it.
///
/// Field types: [`Text`](crate::Text), `String`, integers, `f64`/`f32`, `bool`,
/// [`StrMap`](crate::StrMap), and `Option` of each. The struct also derives `Debug`,
/// `Clone` and `PartialEq`.
///
/// ```
/// use usage_core::{usage_event, Event, EventKind, FieldType, Text};
///
/// usage_event! {
///     #[usage(kind = "storage_usage")]
///     /// Bytes stored per bucket, sampled hourly.
///     pub struct StorageUsage {
///         pub bucket: Text,
///         pub bytes: u64,
///         pub region: Option<Text>,
///     }
/// }
///
/// let schema = StorageUsage::schema();
/// assert_eq!(schema.kind, "storage_usage");
/// assert_eq!(schema.field("region").unwrap().ty, FieldType::Str);
/// assert!(schema.field("region").unwrap().nullable);
///
/// let ev = Event::new(StorageUsage { bucket: "b1".into(), bytes: 42, region: None });
/// assert_eq!(ev.kind(), "storage_usage");
/// assert!(usage_core::kind_schema("storage_usage").is_some());
/// ```
#[macro_export]
macro_rules! usage_event {
    (
        #[usage(kind = $kind:literal $(, inline = $inline:ident)?)]
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field : $ty ),*
        }

        impl $crate::EventKind for $name {
            fn schema() -> &'static $crate::Schema {
                static FIELDS: &[$crate::FieldDef] = &[
                    $( $crate::FieldDef::new(
                        stringify!($field),
                        <$ty as $crate::FieldValue>::TYPE,
                        <$ty as $crate::FieldValue>::NULLABLE,
                    ) ),*
                ];
                static SCHEMA: $crate::Schema = $crate::Schema::new_static($kind, FIELDS);
                &SCHEMA
            }
            fn sanitize(&mut self) {
                $( $crate::FieldValue::sanitize(&mut self.$field); )*
            }
            $(
                fn __into_payload(self) -> $crate::__private::Payload {
                    $crate::__private::Payload::$inline(self)
                }
            )?
        }

        impl $crate::EventData for $name {
            fn dyn_schema(&self) -> &$crate::Schema {
                <$name as $crate::EventKind>::schema()
            }
            fn static_schema(&self) -> Option<&'static $crate::Schema> {
                Some(<Self as $crate::EventKind>::schema())
            }
            fn visit<'a>(&'a self, f: &mut dyn FnMut($crate::Value<'a>)) {
                $( f($crate::FieldValue::value(&self.$field)); )*
            }
            fn heap_bytes(&self) -> usize {
                0 $( + $crate::FieldValue::heap_bytes(&self.$field) )*
            }
            fn clone_boxed(&self) -> ::std::boxed::Box<dyn $crate::EventData> {
                ::std::boxed::Box::new(::std::clone::Clone::clone(self))
            }
            fn as_any(&self) -> &dyn ::std::any::Any {
                self
            }
        }

        impl ::std::convert::From<$name> for $crate::Event {
            #[inline(always)]
            fn from(data: $name) -> $crate::Event {
                $crate::Event::new(data)
            }
        }

        $crate::__private::inventory::submit! {
            $crate::__private::KindRegistration::new(<$name as $crate::EventKind>::schema)
        }
    };
}
