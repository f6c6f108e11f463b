//! `#[derive(Event)]`: an event type and its dispatch key.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{DeriveInput, LitStr, Path, parse_quote};

use crate::args::{parse_crate_path, parse_options};
use crate::check;
use crate::diagnostics::Errors;
use crate::names::Runtime;

/// Options of `#[event(...)]`.
#[derive(Default)]
struct EventAttrs {
    name: Option<LitStr>,
    krate: Option<Path>,
}

fn parse_attrs(input: &DeriveInput) -> syn::Result<EventAttrs> {
    let mut attrs = EventAttrs::default();
    let mut errors = Errors::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        parse_options(attr, &mut errors, |meta| {
            if meta.path.is_ident("name") {
                let name: LitStr = meta.value()?.parse()?;
                if attrs.name.is_some() {
                    return Err(meta.error("duplicate `name`; give the event one name"));
                }
                check::event_name(&name)?;
                attrs.name = Some(name);
                Ok(())
            } else if meta.path.is_ident("crate") {
                let path = parse_crate_path(meta.value()?)?;
                if attrs.krate.replace(path).is_some() {
                    return Err(meta.error("duplicate `crate`; give it once"));
                }
                Ok(())
            } else {
                Err(meta
                    .error("unknown `event` option; expected `name = \"...\"` or `crate = path`"))
            }
        });
    }
    errors.finish().map(|()| attrs)
}

pub(crate) fn expand(mut input: DeriveInput) -> syn::Result<TokenStream> {
    let attrs = parse_attrs(&input)?;
    let runtime = Runtime::new(attrs.krate.as_ref());
    let public = runtime.public();
    let private = runtime.private();
    let ident = &input.ident;
    let name = attrs
        .name
        .unwrap_or_else(|| LitStr::new(&ident.unraw().to_string(), ident.span()));

    // Like `#[derive(Debug)]` asks `T: Debug`, an event asks what `Event` needs of
    // each type parameter.
    let params: Vec<_> = input
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    let where_clause = input.generics.make_where_clause();
    for param in params {
        where_clause
            .predicates
            .push(parse_quote!(#param: ::core::fmt::Debug + ::core::marker::Send + ::core::marker::Sync + 'static));
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    // A concrete type registers its codec, so that it can cross a process when
    // it also derives `Serialize` and `Deserialize` (a no-op without the
    // facade's `redis` feature). A generic type has no single codec.
    let concrete = input.generics.params.is_empty();
    let codec = if concrete {
        quote!(#private::event_codec!(#ident);)
    } else {
        quote!()
    };
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #public::Event for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
        }

        #codec
    })
}
