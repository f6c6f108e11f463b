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
    remote: Option<Ident>,
    krate: Option<Path>,
}

const OPTIONS: &str =
    "expected `response = Type`, `error = Type`, `many`, `remote` or `crate = path`";

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
            } else if meta.path.is_ident("remote") {
                let ident = meta.path.get_ident().cloned();
                if attrs.remote.is_some() {
                    return Err(duplicate("remote"));
                }
                attrs.remote = ident;
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
    let codec = attrs
        .remote
        .as_ref()
        .map(|remote| remote_codec(input, &attrs, remote, &runtime))
        .transpose()?;
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #public::Request for #ident #ty_generics #where_clause {
            type Response = #response;
            type Error = #error;
            const MANY_RESPONDERS: bool = #many;
            #codec
        }
    })
}

/// For a `remote` request: its answers' codec, and the checks, at the
/// user's response and error types, that they cross a process.
fn remote_codec(
    input: &DeriveInput,
    attrs: &RequestAttrs,
    remote: &Ident,
    runtime: &Runtime,
) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            remote,
            "a generic request cannot be `remote`; declare `remote` on a concrete request type",
        ));
    }
    let private = runtime.private();
    let checks = [attrs.response.as_ref(), attrs.error.as_ref()]
        .into_iter()
        .flatten()
        .map(|ty| quote_spanned!(ty.span()=> #private::crosses_process!(#ty);));
    // Spanned at `remote`: what its bounds say is what `remote` asks for.
    let codec = if attrs.error.is_some() {
        quote_spanned!(remote.span()=> #private::answer_codec!(Self))
    } else {
        quote_spanned!(remote.span()=> #private::answer_codec!(infallible Self))
    };
    Ok(quote! {
        fn __pyventus_answer_codec() -> ::core::option::Option<#private::AnswerCodec<Self>> {
            #(#checks)*
            #codec
        }
    })
}
