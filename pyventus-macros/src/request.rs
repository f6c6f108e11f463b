//! `#[derive(Request)]`: a request type's response and error types.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, Path, Type};

use crate::args::{parse_crate_path, parse_options};
use crate::diagnostics::Errors;
use crate::names::Runtime;

/// Options of `#[request(...)]`.
#[derive(Default)]
struct RequestAttrs {
    response: Option<Type>,
    error: Option<Type>,
    many: Option<Ident>,
    krate: Option<Path>,
}

const OPTIONS: &str = "expected `response = Type`, `error = Type`, `many` or `crate = path`";

fn parse_attrs(input: &DeriveInput) -> syn::Result<RequestAttrs> {
    let mut attrs = RequestAttrs::default();
    let mut errors = Errors::default();
    let mut seen = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("request")) {
        seen = true;
        parse_options(attr, &mut errors, |meta| {
            let duplicate = |what: &str| meta.error(format!("duplicate `{what}`; give it once"));
            if meta.path.is_ident("response") {
                let ty: Type = meta.value()?.parse()?;
                if attrs.response.replace(ty).is_some() {
                    return Err(duplicate("response"));
                }
                Ok(())
            } else if meta.path.is_ident("error") {
                let ty: Type = meta.value()?.parse()?;
                if attrs.error.replace(ty).is_some() {
                    return Err(duplicate("error"));
                }
                Ok(())
            } else if meta.path.is_ident("many") {
                let ident = meta.path.get_ident().cloned();
                if attrs.many.is_some() {
                    return Err(duplicate("many"));
                }
                attrs.many = ident;
                Ok(())
            } else if meta.path.is_ident("crate") {
                let path = parse_crate_path(meta.value()?)?;
                if attrs.krate.replace(path).is_some() {
                    return Err(duplicate("crate"));
                }
                Ok(())
            } else {
                Err(meta.error(format!("unknown `request` option; {OPTIONS}")))
            }
        });
    }
    if attrs.response.is_none() {
        let hint = if seen {
            "missing `response = Type`"
        } else {
            "missing `#[request(response = Type)]`"
        };
        errors.push(syn::Error::new(
            input.ident.span(),
            format!(
                "{hint}: a request declares what its responder answers, \
                 e.g. `#[request(response = Quote, error = QuoteError)]`"
            ),
        ));
    }
    errors.finish().map(|()| attrs)
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let attrs = parse_attrs(input)?;
    let runtime = Runtime::new(attrs.krate.as_ref());
    let public = runtime.public();
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let response = attrs.response.as_ref().map(|ty| quote!(#ty));
    let error = match &attrs.error {
        Some(ty) => quote!(#ty),
        None => quote!(::core::convert::Infallible),
    };
    let many = attrs.many.is_some();
    let response_span = attrs
        .response
        .as_ref()
        .map_or_else(|| ident.span(), Spanned::span);
    let response = quote_spanned!(response_span=> #response);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #public::Request for #ident #ty_generics #where_clause {
            type Response = #response;
            type Error = #error;
            const MANY_RESPONDERS: bool = #many;
        }
    })
}
