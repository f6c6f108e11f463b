//! `#[on(...)]` and `#[once(...)]`: a function linked to events at link time.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Type};

use crate::args::{EventArg, HandlerArgs};
use crate::path;
use crate::signature::{Form, Output, Signature, expand_fn, respan};

/// Which attribute: a regular or a one-time subscription.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    On,
    Once,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::On => "on",
            Kind::Once => "once",
        }
    }
}

/// What the handler's events make of its parameter.
enum Subscription<'a> {
    /// One typed event.
    Typed(&'a Type),
    /// One named event.
    Named,
    /// Several events, or the global event.
    Many,
}

/// The hidden item `#[on_success(handler)]` finds a handler by.
pub(crate) fn info_ident(handler: &Ident) -> Ident {
    format_ident!("__pyventus_handler_{}", handler, span = handler.span())
}

/// Expands `#[on]`/`#[once]`; on error, the function is still emitted so the
/// rest of the crate type-checks.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    expand_fn(item, kind.attr(), "the handler", |func| {
        expand_handler(kind, args, func)
    })
}

fn expand_handler(kind: Kind, args: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    let attr_span = if args.is_empty() {
        func.sig.ident.span()
    } else {
        args.span()
    };
    let args: HandlerArgs = syn::parse2(args)?;
    args.check(attr_span, kind.attr())?;
    let sig = Signature::parse(func, "a handler")?;
    let subscription = match args.events.as_slice() {
        [EventArg::Typed(ty)] => Subscription::Typed(ty),
        [EventArg::Named(_)] => Subscription::Named,
        _ => Subscription::Many,
    };
    check_param(&sig, &subscription)?;

    let runtime = path::runtime();
    let private = path::private();
    let ident = &func.sig.ident;
    let vis = &func.vis;
    let info = info_ident(ident);
    let ok_type = ok_type(&sig.output);
    let keys = args.events.iter().map(|event| match event {
        EventArg::Typed(ty) => quote_spanned!(ty.span()=> #runtime::EventKey::of::<#ty>()),
        EventArg::Named(name) => quote!(#runtime::EventKey::named(#name)),
        EventArg::Any(_) => quote!(#runtime::EventKey::any()),
    });
    let callback = if sig.is_async {
        async_callback(&sig, &subscription)
    } else {
        sync_callback(&sig, &subscription)
    };
    let namespace = match &args.linker {
        Some(linker) => {
            quote_spanned!(linker.span()=> ::core::option::Option::Some(#private::namespace::<#linker>))
        }
        None => quote!(::core::option::Option::None),
    };
    let once = matches!(kind, Kind::Once);
    let blocking = args.blocking.is_some();

    let func = sig.emit();
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #info;

        #[automatically_derived]
        impl #private::HandlerInfo for #info {
            const ID: &'static str = ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident));
            type Ok = #ok_type;
        }

        const _: () = {
            fn __pyventus_keys() -> ::std::vec::Vec<#runtime::EventKey> {
                ::std::vec![#(#keys),*]
            }

            fn __pyventus_callback() -> #private::EventCallback {
                #callback
            }

            #private::inventory::submit! {
                #private::Registration::Handler {
                    namespace: #namespace,
                    id: <#info as #private::HandlerInfo>::ID,
                    keys: __pyventus_keys,
                    once: #once,
                    blocking: #blocking,
                    callback: __pyventus_callback,
                }
            }
        };
    })
}

/// The parameter forms each subscription allows.
fn check_param(sig: &Signature<'_>, subscription: &Subscription<'_>) -> syn::Result<()> {
    let Some(param) = &sig.param else {
        return Ok(());
    };
    let error = |message: &str| Err(syn::Error::new_spanned(&param.ty, message));
    match (&param.form, subscription, sig.is_async) {
        (Form::AnyShared, _, false) => error(
            "a synchronous handler borrows the event: take `&AnyEvent` (`Arc<AnyEvent>` is for `async fn`)",
        ),
        (Form::Ref(_) | Form::Value(_) | Form::Shared(_), Subscription::Many, _) => error(
            "a handler of several events, or of the global event, cannot know the event's type: \
             take `&AnyEvent` and downcast it (`e.downcast_ref::<T>()`), or nothing",
        ),
        (Form::Shared(_), Subscription::Named, _) => {
            error("a named event's payload is lent to its handlers: take `&T` (or `T`, cloned)")
        }
        _ => Ok(()),
    }
}

/// The type the handler hands its success callback.
fn ok_type(output: &Output) -> TokenStream {
    let runtime = path::runtime();
    match output {
        Output::Unit => quote!(()),
        // Read off the type as written where possible: the callback's own bounds
        // then report a bad error type once, at the return type.
        Output::Result(_, Some(ok)) => quote!(#ok),
        Output::Result(ty, None) => {
            quote_spanned!(ty.span()=> <#ty as #runtime::HandlerOutput>::Ok)
        }
        Output::Value(ty) => quote!(#ty),
    }
}

/// `call`, made a result pyventus understands: plain values become
/// `Ok::<_, Infallible>(value)`.
fn wrap_output(output: &Output, call: TokenStream) -> TokenStream {
    match output {
        Output::Unit | Output::Result(..) => call,
        Output::Value(_) => {
            quote!(::core::result::Result::Ok::<_, ::core::convert::Infallible>(#call))
        }
    }
}

/// The handler called with `arg`, spanned at the user's parameter so that a type
/// mismatch points there.
fn call(sig: &Signature<'_>, arg: Option<TokenStream>) -> TokenStream {
    let ident = &sig.func.sig.ident;
    match (&sig.param, arg) {
        (Some(param), Some(arg)) => {
            let arg = respan(arg, param.ty.span());
            quote_spanned!(param.ty.span()=> #ident(#arg))
        }
        _ => quote!(#ident()),
    }
}

fn sync_callback(sig: &Signature<'_>, subscription: &Subscription<'_>) -> TokenStream {
    let runtime = path::runtime();
    let private = path::private();
    let clone = quote!(::core::clone::Clone::clone);
    let (constructor, closure) = match (&sig.param, subscription) {
        (None, _) => {
            let body = wrap_output(&sig.output, call(sig, None));
            (quote!(any_callback), quote!(|_: &#runtime::AnyEvent| #body))
        }
        (Some(param), subscription) => {
            let event = match (&param.form, subscription) {
                (Form::Ref(ty) | Form::Value(ty) | Form::Shared(ty), Subscription::Named) => {
                    ty.clone()
                }
                (_, Subscription::Typed(event)) => (*event).clone(),
                _ => syn::parse_quote!(#runtime::AnyEvent),
            };
            match &param.form {
                Form::Ref(_) => {
                    let body = wrap_output(&sig.output, call(sig, Some(quote!(__e))));
                    (quote!(typed_callback), quote!(|__e: &#event| #body))
                }
                Form::Value(_) => {
                    let body = wrap_output(&sig.output, call(sig, Some(quote!(#clone(__e)))));
                    (quote!(typed_callback), quote!(|__e: &#event| #body))
                }
                Form::Shared(_) => {
                    let body = wrap_output(&sig.output, call(sig, Some(quote!(__e))));
                    (
                        quote!(shared_callback),
                        quote!(|__e: ::std::sync::Arc<#event>| #body),
                    )
                }
                Form::AnyRef | Form::AnyShared => {
                    let body = wrap_output(&sig.output, call(sig, Some(quote!(__e))));
                    (
                        quote!(any_callback),
                        quote!(|__e: &#runtime::AnyEvent| #body),
                    )
                }
            }
        }
    };
    quote!(#private::#constructor(#closure))
}

fn async_callback(sig: &Signature<'_>, subscription: &Subscription<'_>) -> TokenStream {
    let runtime = path::runtime();
    let private = path::private();
    let clone = quote!(::core::clone::Clone::clone);
    let settle = |arg: Option<TokenStream>| {
        let called = call(sig, arg);
        let result = wrap_output(&sig.output, quote!(#called.await));
        quote!(#private::outcome(#result))
    };
    let body = match &sig.param {
        None => settle(None),
        Some(param) => {
            let payload = match (&param.form, subscription) {
                (Form::Ref(ty) | Form::Value(ty) | Form::Shared(ty), Subscription::Named) => {
                    Some(ty.clone())
                }
                (Form::Ref(_) | Form::Value(_) | Form::Shared(_), Subscription::Typed(event)) => {
                    Some((*event).clone())
                }
                _ => None,
            };
            match (&param.form, payload) {
                (Form::AnyRef, _) => settle(Some(quote!(&*__ev))),
                (Form::AnyShared, _) => settle(Some(quote!(__ev))),
                (Form::Shared(_), Some(event)) => {
                    let run = settle(Some(quote!(__e)));
                    quote! {
                        match #private::shared_event::<#event>(&__ev) {
                            ::core::option::Option::Some(__e) => #run,
                            ::core::option::Option::None => ::core::result::Result::Err(#private::payload_mismatch::<#event>(&*__ev)),
                        }
                    }
                }
                (form, Some(event)) => {
                    let arg = match form {
                        Form::Value(_) => quote!(#clone(__e)),
                        _ => quote!(__e),
                    };
                    let run = settle(Some(arg));
                    quote! {
                        match __ev.downcast_ref::<#event>() {
                            ::core::option::Option::Some(__e) => #run,
                            ::core::option::Option::None => ::core::result::Result::Err(#private::payload_mismatch::<#event>(&*__ev)),
                        }
                    }
                }
                (_, None) => settle(Some(quote!(&*__ev))),
            }
        }
    };
    quote! {
        #private::async_fn_callback(|__ev: ::std::sync::Arc<#runtime::AnyEvent>| async move { #body })
    }
}
