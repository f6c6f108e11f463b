//! `#[respond]`: a function that answers a request, registered at link time.
//!
//! The request is read from the parameter (`&R` for a `fn`, `Arc<R>` for an
//! `async fn`); whether `R` is a request, and whether the function returns
//! its answer (`Result<R::Response, R::Error>`), only the compiler can tell:
//! generated code asks it, spanned at the parameter and the return type.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, Path, PathArguments, ReturnType, Type};

use crate::args::parse_crate_path;
use crate::diagnostics::{Errors, expand_fn, respan};
use crate::names::Runtime;

/// The arguments of `#[respond(...)]`.
#[derive(Default)]
struct RespondArgs {
    linker: Option<Path>,
    krate: Option<Path>,
}

const OPTIONS: &str = "expected `linker = Path` or `crate = path`";

/// Expands `#[respond]`; on error, the function is still emitted so the rest
/// of the crate type-checks.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_fn(item, "respond", "the responder", |func, item| {
        expand_responder(args, func, item)
    })
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> RespondArgs {
    let mut parsed = RespondArgs::default();
    let parser = syn::meta::parser(|meta: ParseNestedMeta<'_>| {
        let result = if meta.path.is_ident("linker") {
            let path: Path = meta.value()?.parse()?;
            if parsed.linker.replace(path).is_some() {
                Err(meta.error("duplicate `linker`; a responder belongs to one linker"))
            } else {
                Ok(())
            }
        } else if meta.path.is_ident("crate") {
            let path = parse_crate_path(meta.value()?)?;
            if parsed.krate.replace(path).is_some() {
                Err(meta.error("duplicate `crate`; give it once"))
            } else {
                Ok(())
            }
        } else {
            let err = meta.error(format!("unknown `respond` option; {OPTIONS}"));
            // Its value too, so that the options after it are still read.
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Err(err)
        };
        if let Err(err) = result {
            errors.push(err);
        }
        Ok(())
    });
    let parsed_all = syn::parse::Parser::parse2(parser, args);
    errors.check(parsed_all);
    parsed
}

/// The request a responder's parameter takes: `&R` (sync) or `Arc<R>` (async).
fn request_type(func: &ItemFn, errors: &mut Errors) -> Option<Type> {
    let is_async = func.sig.asyncness.is_some();
    let expected = if is_async {
        "an `async fn` responder takes its request as `Arc<Request>`: \
         `async fn quote(req: Arc<GetQuote>) -> Result<Quote, QuoteError>`"
    } else {
        "a responder takes its request by reference: \
         `fn quote(req: &GetQuote) -> Result<Quote, QuoteError>`"
    };
    let mut inputs = func.sig.inputs.iter();
    let (Some(first), None) = (inputs.next(), inputs.next()) else {
        let span = if func.sig.inputs.is_empty() {
            func.sig.paren_token.span.join()
        } else {
            func.sig.inputs.span()
        };
        errors.push(syn::Error::new(
            span,
            format!("expected one parameter; {expected}"),
        ));
        return None;
    };
    let FnArg::Typed(param) = first else {
        errors.push(syn::Error::new_spanned(
            first,
            format!("a responder is a free function, not a method; {expected}"),
        ));
        return None;
    };
    let request = if is_async {
        arc_inner(&param.ty)
    } else {
        match &*param.ty {
            Type::Reference(r) if r.mutability.is_none() => Some((*r.elem).clone()),
            _ => None,
        }
    };
    if request.is_none() {
        errors.push(syn::Error::new_spanned(&param.ty, expected));
    }
    request
}

/// `T` of `Arc<T>` (whatever the path to `Arc`).
fn arc_inner(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Arc" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(inner)] => Some(inner.clone()),
        _ => None,
    }
}

fn expand_responder(
    args: TokenStream,
    func: &ItemFn,
    item: &TokenStream,
) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = parse_args(args, &mut errors);
    if !func.sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &func.sig.generics,
            "a responder cannot be generic: it answers one request type",
        ));
    }
    let request = request_type(func, &mut errors);
    let output_span = match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => {
            errors.push(syn::Error::new(
                func.sig.paren_token.span.close(),
                "a responder returns its request's answer: add \
                 `-> Result<Response, Error>` with the request's types",
            ));
            Span::call_site()
        }
    };
    errors.finish()?;
    let Some(request) = request else {
        // Reported above.
        return Ok(item.clone());
    };

    let runtime = Runtime::new(args.krate.as_ref());
    let private = runtime.private();
    let ident = &func.sig.ident;
    let namespace = match &args.linker {
        Some(linker) => {
            quote_spanned!(linker.span()=> ::core::option::Option::Some(#private::namespace::<#linker>))
        }
        None => quote!(::core::option::Option::None),
    };
    // `R: Request` is asked at the parameter's request type; the function
    // coerced to `fn(&R) -> Result<R::Response, R::Error>` at its return type.
    let make = if func.sig.asyncness.is_some() {
        quote_spanned!(request.span()=> #private::async_responder::<#request, _>)
    } else {
        quote_spanned!(request.span()=> #private::sync_responder::<#request>)
    };
    let handler = respan(quote!(#ident), output_span);
    Ok(quote! {
        // A responder returns its request's `Result` whether or not it can
        // fail (its signature is the request's): clippy's pedantic
        // `unnecessary_wraps` would ask for what cannot be.
        #[allow(clippy::unnecessary_wraps)]
        #item

        const _: () = {
            fn __pyventus_responder() -> #private::DeclaredResponder {
                #make(#handler)
            }

            #private::inventory::submit! {
                #private::Registration::Responder {
                    namespace: #namespace,
                    id: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    responder: __pyventus_responder,
                }
            }
        };
    })
}
