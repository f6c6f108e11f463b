//! `#[on_success(...)]` and `#[on_failure(...)]`: the callbacks of one handler,
//! or (with no handler named) a linker's default callbacks.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, Path, Type};

use crate::args::CallbackArgs;
use crate::check;
use crate::diagnostics::{Errors, expand_fn, respan};
use crate::names::{self, Runtime};
use crate::signature::{Outcome, Signature};

/// Expands `#[on_success]`/`#[on_failure]`; on error, the function is still
/// emitted so the rest of the crate type-checks.
pub(crate) fn expand(outcome: Outcome, args: TokenStream, item: TokenStream) -> TokenStream {
    expand_fn(item, outcome.attr(), "the callback", |func, item| {
        expand_callback(outcome, args, func, item)
    })
}

fn expand_callback(
    outcome: Outcome,
    args: TokenStream,
    func: &ItemFn,
    item: &TokenStream,
) -> syn::Result<TokenStream> {
    // Every mistake of the attribute and the signature, in one compile.
    let mut errors = Errors::default();
    let args = CallbackArgs::parse(args, &mut errors);
    let sig = Signature::parse(func, outcome.role(), &mut errors);
    if let Some(asyncness) = &func.sig.asyncness {
        errors.push(syn::Error::new_spanned(
            asyncness,
            format!(
                "{} runs synchronously, right after its handler; remove `async` \
                 (and emit an event if it has async work to start)",
                outcome.role()
            ),
        ));
    }
    if !args.bad_handler
        && let Err(err) = check::callback_param(outcome, &sig, args.handler.is_none())
    {
        errors.push(err);
    }
    errors.finish()?;

    let runtime = Runtime::new(args.krate.as_ref());
    let registration = match &args.handler {
        Some(handler) => of_handler(outcome, &sig, handler, &runtime),
        None => default_of(outcome, &sig, args.linker.as_ref(), &runtime),
    };
    let fallback = args
        .handler
        .as_ref()
        .map(|handler| fallback(&func.sig.ident, handler, &runtime.private()));
    let func = sig.emit(item);
    Ok(quote! {
        #func

        #fallback

        const _: () = {
            #registration
        };
    })
}

/// For a handler named without a path (`charge`, in this module): a type
/// of the hidden handler-info name in a module of the callback's own, glob
/// imported beside it. The handler's own hidden alias, an item of this
/// module, shadows a glob import; when there is none (`charge` is no `#[on]`
/// handler), the fallback is found, it is not a `HandlerInfo`, and the
/// trait's diagnostic says so, where a missing item would only be "cannot
/// find type `__pyventus_handler_charge`".
fn fallback(callback: &syn::Ident, handler: &Path, private: &TokenStream) -> Option<TokenStream> {
    let handler = handler.get_ident()?;
    let info = names::handler_info(handler);
    let module = quote::format_ident!("__pyventus_fallback_{}", callback);
    Some(quote! {
        #[doc(hidden)]
        #[allow(non_snake_case)]
        mod #module {
            #[allow(non_camel_case_types, dead_code)]
            pub type #info = #private::NotAHandler;
        }
        #[allow(unused_imports)]
        use #module::*;
    })
}

/// The callback called with `arg`, spanned at its parameter so that a type
/// mismatch points there.
fn call(sig: &Signature<'_>, arg: TokenStream) -> TokenStream {
    let ident = &sig.func.sig.ident;
    match &sig.param {
        Some(param) => {
            let arg = respan(arg, param.ty.span());
            quote_spanned!(param.ty.span()=> #ident(#arg))
        }
        None => quote!(#ident()),
    }
}

/// The hidden `Declared` alias of the handler at `handler`.
fn info_path(handler: &Path) -> Path {
    let mut info = handler.clone();
    if let Some(last) = info.segments.last_mut() {
        last.ident = names::handler_info(&last.ident);
    }
    info
}

fn of_handler(
    outcome: Outcome,
    sig: &Signature<'_>,
    handler: &Path,
    runtime: &Runtime,
) -> TokenStream {
    let private = runtime.private();
    let info = info_path(handler);
    // Every use at the handler's span: a name that is no handler is then one
    // error there, not one per use.
    let info = quote_spanned!(handler.span()=> #info);
    let key = quote_spanned!(handler.span()=> <#info as #private::HandlerInfo>::KEY);
    // Where the callback is and the path it names its handler with, for the
    // linker's errors.
    let path = quote!(#handler).to_string().replace(' ', "");
    match outcome {
        Outcome::Success => {
            let callback = if let Some(param) = &sig.param {
                // The closure's parameter is the handler's `Ok` type, read off
                // its declared return type by the read probe (as `#[on]` reads
                // it); `success_value` checks it is the type the callback
                // takes, at its parameter.
                let ty = match &param.ty {
                    // Generic: whatever the `Ok` type is.
                    Type::ImplTrait(_) => quote!(_),
                    ty => quote!(#ty),
                };
                let called = call(sig, quote!(#private::success_value::<_, #ty>(__value)));
                let read = quote!(|__r| {
                    (&&&#private::OutputProbe::of(&__r)).output_kind().read(__r)
                });
                quote!(#private::SuccessFn::new::<#info, _>(#read, |__value| { let _ = #called; }))
            } else if matches!(sig.func.sig.output, syn::ReturnType::Default) {
                // Nothing to adapt: the callback itself is the `fn()`.
                let ident = &sig.func.sig.ident;
                quote!(#private::IgnoreFn(#ident))
            } else {
                let called = call(sig, quote!());
                quote!(#private::IgnoreFn(|| { let _ = #called; }))
            };
            quote! {
                #[allow(unused_imports)]
                use #private::{ViaHandlerOutput as _, ViaResult as _, ViaValue as _};

                #private::inventory::submit! {
                    #private::Registration::Success {
                        handler: #key,
                        named: (::core::module_path!(), #path),
                        callback: &#callback,
                    }
                }
            }
        }
        Outcome::Failure => {
            let called = call(sig, quote!(__error));
            quote! {
                fn __pyventus_failure(__error: &#private::anyhow::Error) {
                    let _ = #called;
                }

                #private::inventory::submit! {
                    #private::Registration::Failure {
                        handler: #key,
                        named: (::core::module_path!(), #path),
                        callback: __pyventus_failure,
                    }
                }
            }
        }
    }
}

fn default_of(
    outcome: Outcome,
    sig: &Signature<'_>,
    linker: Option<&Path>,
    runtime: &Runtime,
) -> TokenStream {
    let private = runtime.private();
    let ident = &sig.func.sig.ident;
    let namespace = match linker {
        Some(linker) => {
            quote_spanned!(linker.span()=> ::core::option::Option::Some(#private::namespace::<#linker>))
        }
        None => quote!(::core::option::Option::None),
    };
    let id = quote!(::core::concat!(
        ::core::module_path!(),
        "::",
        ::core::stringify!(#ident)
    ));
    let (variant, param) = match outcome {
        Outcome::Success => (quote!(DefaultSuccess), quote!(&dyn ::core::any::Any)),
        Outcome::Failure => (quote!(DefaultFailure), quote!(&#private::anyhow::Error)),
    };
    let called = call(sig, quote!(__value));
    quote! {
        fn __pyventus_default(__value: #param) {
            let _ = #called;
        }

        #private::inventory::submit! {
            #private::Registration::#variant {
                namespace: #namespace,
                id: #id,
                callback: __pyventus_default,
            }
        }
    }
}
