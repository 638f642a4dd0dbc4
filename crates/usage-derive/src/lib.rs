//! `#[derive(UsageEvent)]`: a struct becomes a usage event kind, with its schema,
//! encoding and registration generated. Re-exported as `usage_core::UsageEvent`
//! (and `usage::UsageEvent`); see its documentation there.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, LitStr, Path};

/// See `usage_core::UsageEvent`.
#[proc_macro_derive(UsageEvent, attributes(usage))]
pub fn derive_usage_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The struct-level `#[usage(kind = "...", crate = path)]`.
struct StructOptions {
    kind: LitStr,
    krate: Path,
}

fn struct_options(input: &DeriveInput) -> syn::Result<StructOptions> {
    let mut kind = None;
    let mut krate: Path = syn::parse_quote!(::usage_core);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("usage")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("kind") {
                kind = Some(meta.value()?.parse::<LitStr>()?);
                Ok(())
            } else if meta.path.is_ident("crate") {
                krate = meta.value()?.parse::<LitStr>()?.parse()?;
                Ok(())
            } else {
                Err(meta.error("unknown `usage` option: expected `kind = \"...\"` or `crate = \"...\"`"))
            }
        })?;
    }
    let kind = kind.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "UsageEvent needs `#[usage(kind = \"...\")]` on the struct: the kind's name, e.g. `storage_usage`",
        )
    })?;
    Ok(StructOptions { kind, krate })
}

/// A field's name in the schema: `#[usage(rename = "...")]`, else its Rust name.
fn field_name(field: &syn::Field) -> syn::Result<LitStr> {
    let mut name = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("usage")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                name = Some(meta.value()?.parse::<LitStr>()?);
                Ok(())
            } else {
                Err(meta.error("unknown `usage` field option: expected `rename = \"...\"`"))
            }
        })?;
    }
    let ident = field.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
    Ok(name.unwrap_or_else(|| LitStr::new(&ident, Span::call_site())))
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let StructOptions { kind, krate } = struct_options(input)?;
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "an event kind cannot be generic",
        ));
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => f.named.iter().collect::<Vec<_>>(),
            _ => {
                return Err(syn::Error::new_spanned(
                    name,
                    "UsageEvent needs a struct with named fields",
                ))
            }
        },
        _ => return Err(syn::Error::new_spanned(name, "UsageEvent needs a struct")),
    };
    let idents: Vec<_> = fields.iter().map(|f| f.ident.clone()).collect();
    let types: Vec<_> = fields.iter().map(|f| f.ty.clone()).collect();
    let names = fields.iter().map(|f| field_name(f)).collect::<syn::Result<Vec<_>>>()?;
    Ok(quote! {
        impl #krate::EventKind for #name {
            fn schema() -> &'static #krate::Schema {
                static FIELDS: &[#krate::FieldDef] = &[
                    #( #krate::FieldDef::new(
                        #names,
                        <#types as #krate::FieldValue>::TYPE,
                        <#types as #krate::FieldValue>::NULLABLE,
                    ) ),*
                ];
                static SCHEMA: #krate::Schema = #krate::Schema::new_static(#kind, FIELDS);
                &SCHEMA
            }
            fn sanitize(&mut self) {
                #( #krate::FieldValue::sanitize(&mut self.#idents); )*
            }
        }

        impl #krate::EventData for #name {
            fn dyn_schema(&self) -> &#krate::Schema {
                <#name as #krate::EventKind>::schema()
            }
            fn static_schema(&self) -> Option<&'static #krate::Schema> {
                Some(<#name as #krate::EventKind>::schema())
            }
            fn visit<'a>(&'a self, f: &mut dyn FnMut(#krate::Value<'a>)) {
                #( f(#krate::FieldValue::value(&self.#idents)); )*
            }
            fn heap_bytes(&self) -> usize {
                0 #( + #krate::FieldValue::heap_bytes(&self.#idents) )*
            }
            fn clone_boxed(&self) -> ::std::boxed::Box<dyn #krate::EventData> {
                ::std::boxed::Box::new(::std::clone::Clone::clone(self))
            }
            fn as_any(&self) -> &dyn ::std::any::Any {
                self
            }
        }

        impl ::std::convert::From<#name> for #krate::Event {
            #[inline(always)]
            fn from(data: #name) -> #krate::Event {
                #krate::Event::new(data)
            }
        }

        #krate::__private::inventory::submit! {
            #krate::__private::KindRegistration::new(<#name as #krate::EventKind>::schema)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn error_of(src: &str) -> String {
        let input: syn::DeriveInput = syn::parse_str(src).unwrap();
        match expand(&input) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert!(error_of("struct A { x: u64 }").contains("needs `#[usage(kind = \"...\")]`"));
        assert!(error_of("#[usage(kind = \"a\", knd = \"b\")] struct A { x: u64 }").contains("unknown `usage` option"));
        assert!(
            error_of("#[usage(kind = \"a\")] struct A { #[usage(renam = \"y\")] x: u64 }")
                .contains("unknown `usage` field option")
        );
        assert!(error_of("#[usage(kind = \"a\")] struct A(u64);").contains("named fields"));
        assert!(error_of("#[usage(kind = \"a\")] enum A { X }").contains("needs a struct"));
        assert!(error_of("#[usage(kind = \"a\")] struct A<T> { x: T }").contains("cannot be generic"));
        assert_eq!(
            error_of("#[usage(kind = \"a\")] struct A { #[usage(rename = \"y\")] x: u64 }"),
            ""
        );
    }
}
