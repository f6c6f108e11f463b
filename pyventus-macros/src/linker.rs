//! `#[derive(Linker)]`: a namespace with a linker of its own.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitBool, LitInt, LitStr, Path};

use crate::args::{parse_crate_path, parse_options};
use crate::diagnostics::Errors;
use crate::names::Runtime;
use crate::policy::PolicyArgs;

/// Options of `#[linker(...)]`.
#[derive(Default)]
struct LinkerAttrs {
    name: Option<LitStr>,
    max_subscribers: Option<LitInt>,
    debug: Option<LitBool>,
    krate: Option<Path>,
    /// The default policy of its handlers.
    policy: PolicyArgs,
    /// Middleware around its handlers, outermost first.
    middleware: Vec<syn::Expr>,
}

fn parse_attrs(input: &DeriveInput, errors: &mut Errors) -> LinkerAttrs {
    let mut attrs = LinkerAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("linker")) {
        parse_options(attr, errors, |meta| {
            let duplicate = || meta.error("this option is given twice; give it once");
            if meta.path.is_ident("max_subscribers") {
                let limit: LitInt = meta.value()?.parse()?;
                if limit.base10_parse::<usize>()? == 0 {
                    return Err(syn::Error::new(
                        limit.span(),
                        "`max_subscribers` must be at least 1; leave it out for no limit",
                    ));
                }
                if attrs.max_subscribers.replace(limit).is_some() {
                    return Err(duplicate());
                }
            } else if meta.path.is_ident("debug") {
                let debug: LitBool = meta.value()?.parse()?;
                if attrs.debug.replace(debug).is_some() {
                    return Err(duplicate());
                }
            } else if meta.path.is_ident("name") {
                let name: LitStr = meta.value()?.parse()?;
                if attrs.name.replace(name).is_some() {
                    return Err(duplicate());
                }
            } else if meta.path.is_ident("middleware") {
                attrs.middleware.push(meta.value()?.parse()?);
            } else if PolicyArgs::is_option(&meta.path) {
                let key = meta.path.require_ident()?.clone();
                attrs.policy.parse_value(&key, meta.value()?)?;
            } else if meta.path.is_ident("crate") {
                let path = parse_crate_path(meta.value()?)?;
                if attrs.krate.replace(path).is_some() {
                    return Err(duplicate());
                }
            } else {
                return Err(meta.error(
                    "unknown `linker` option; expected `max_subscribers = N`, `debug = bool`, \
                     `name = \"...\"`, `crate = path`, `middleware = expr`, or a default \
                     policy: `retries`, `backoff`, `timeout`, `concurrency`, `busy`",
                ));
            }
            Ok(())
        });
    }
    attrs
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "a linker namespace cannot be generic: each namespace is one registry; \
             declare one type per namespace",
        ));
    }
    let attrs = parse_attrs(input, &mut errors);
    attrs.policy.check(None, &mut errors);
    errors.finish()?;
    let runtime = Runtime::new(attrs.krate.as_ref());
    let public = runtime.public();
    let private = runtime.private();
    let ident = &input.ident;
    let vis = &input.vis;
    let name = attrs
        .name
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let max_subscribers = match attrs.max_subscribers {
        Some(limit) => quote!(::core::option::Option::Some(#limit)),
        None => quote!(::core::option::Option::None),
    };
    let debug = match attrs.debug {
        Some(debug) => quote!(::core::option::Option::Some(#debug)),
        None => quote!(::core::option::Option::None),
    };
    let policy = attrs.policy.expand(&public);
    let middleware = attrs.middleware.iter().map(|expr| {
        quote::quote_spanned!(syn::spanned::Spanned::span(expr)=> #private::middleware_layer(#expr))
    });
    let doc = format!(
        "The [`EventLinker`]({runtime}::EventLinker) of the `{ident}` namespace, with every \
         link-time handler declared with `linker = {ident}`.\n\n# Panics\n\nOn first use, if \
         those handlers cannot be linked; `<{ident} as Linker>::try_linker()` returns the error instead.",
        runtime = runtime.to_doc_path(),
    );

    Ok(quote! {
        #[automatically_derived]
        impl #public::Linker for #ident {
            fn try_linker() -> ::core::result::Result<#public::EventLinker, #public::Error> {
                static LINKER: ::std::sync::OnceLock<
                    ::core::result::Result<#public::EventLinker, #public::Error>,
                > = ::std::sync::OnceLock::new();
                #private::namespace_linker::<Self>(
                    &LINKER,
                    #name,
                    #max_subscribers,
                    #debug,
                    #policy,
                    || ::std::vec![#(#middleware),*],
                )
            }
        }

        #[automatically_derived]
        impl #ident {
            #[doc = #doc]
            #vis fn linker() -> #public::EventLinker {
                <Self as #public::Linker>::linker()
            }
        }

        #private::inventory::submit! {
            #private::Registration::Namespace {
                name: ::core::any::type_name::<#ident>,
                try_linker: <#ident as #public::Linker>::try_linker,
            }
        }
    })
}
