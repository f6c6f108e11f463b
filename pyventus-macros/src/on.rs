//! `#[on(...)]` and `#[once(...)]`: a function linked to events at link time.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, Type};

use crate::args::{EventArg, HandlerArgs};
use crate::check::{self, EventShape};
use crate::diagnostics::{Errors, expand_fn, respan};
use crate::names::{self, Runtime};
use crate::signature::{Form, Signature};

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

/// Expands `#[on]`/`#[once]`; on error, the function is still emitted so the
/// rest of the crate type-checks.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    expand_fn(item, kind.attr(), "the handler", |func, item| {
        expand_handler(kind, args, func, item)
    })
}

/// What the generated code needs besides the signature.
struct Generated {
    runtime: Runtime,
    /// The handler's key: its alias's and its registration's.
    key: u64,
    /// The handler's linker, as its registration names it.
    namespace: TokenStream,
    /// The handler's declared return type (its future's output).
    output: TokenStream,
    /// Where errors about the return type point.
    output_span: Span,
}

fn expand_handler(
    kind: Kind,
    args: TokenStream,
    func: &ItemFn,
    item: &TokenStream,
) -> syn::Result<TokenStream> {
    let attr_span = if args.is_empty() {
        func.sig.ident.span()
    } else {
        args.span()
    };
    // Every mistake of the attribute and the signature, in one compile.
    let mut errors = Errors::default();
    let args = HandlerArgs::parse(args, &mut errors);
    args.check(attr_span, kind.attr(), &mut errors);
    let sig = Signature::parse_handler(func, &mut errors);
    let shape = match args.events.as_slice() {
        [EventArg::Typed(ty)] => EventShape::Typed(ty),
        [EventArg::Named(_)] => EventShape::Named,
        _ => EventShape::Many,
    };
    if let Err(err) = check::handler_param(&sig, &shape) {
        errors.push(err);
    }
    args.policy.check(Some(sig.is_async), &mut errors);
    if let (Some(inline), true) = (&args.inline, sig.is_async) {
        errors.push(syn::Error::new(
            inline.span(),
            "`inline` is for synchronous handlers: an `async fn` handler is always \
             compiled into a future of its own; remove `inline`",
        ));
    }
    errors.finish()?;

    let runtime = Runtime::new(args.krate.as_ref());
    let private = runtime.private();
    let ident = &func.sig.ident;
    let vis = &func.vis;
    let info = names::handler_info(ident);
    let output = &sig.output;
    let namespace = match &args.linker {
        Some(linker) => {
            quote_spanned!(linker.span()=> ::core::option::Option::Some(#private::namespace::<#linker>))
        }
        None => quote!(::core::option::Option::None),
    };
    let key = names::handler_key(ident);
    // An `impl Trait` return type is refused where the handler's data reads
    // it (`E0562`); an alias would add that it is unstable there (`E0658`).
    let alias_output = if names::mentions_impl(&quote!(#output)) {
        quote!(())
    } else {
        quote!(#output)
    };
    let generated = Generated {
        key,
        namespace,
        output: quote!(#output),
        output_span: match &func.sig.output {
            syn::ReturnType::Default => Span::call_site(),
            syn::ReturnType::Type(_, ty) => ty.span(),
        },
        runtime,
    };
    let handler = if sig.is_async {
        async_handler(&sig, &shape, &generated)
    } else if !sig.extras.is_empty() {
        extracting_handler(&sig, &shape, &generated)
    } else if args.inline.is_some() {
        inline_handler(&sig, &shape, &generated)
    } else {
        sync_handler(&sig, &shape, &generated)
    };
    let registration = registration(kind, &args, &sig, handler, &generated);
    let func = sig.emit(item);
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, private_interfaces)]
        #vis type #info = #private::Declared<fn() -> #alias_output, #key>;

        #registration
    })
}

/// The handler's registration: its data, submitted to `inventory`.
fn registration(
    kind: Kind,
    args: &HandlerArgs,
    sig: &Signature<'_>,
    handler: Handler,
    generated: &Generated,
) -> TokenStream {
    let public = generated.runtime.public();
    let private = generated.runtime.private();
    let keys = match args.events.as_slice() {
        // One slice per event type, not one per handler.
        [EventArg::Typed(ty)] => quote_spanned!(ty.span()=> <#ty as #private::EventKeys>::ONE),
        events => {
            let keys = events.iter().map(|event| match event {
                EventArg::Typed(ty) => {
                    quote_spanned!(ty.span()=> #private::KeySpec::Typed(#public::EventKey::of::<#ty>))
                }
                EventArg::Named(name) => quote!(#private::KeySpec::Named(#name)),
                EventArg::Any(_) => quote!(#private::KeySpec::Any),
            });
            quote!(&[#(#keys),*])
        }
    };
    let Handler {
        items,
        callback,
        probes,
    } = handler;
    let ident = &sig.func.sig.ident;
    let id = format!("::{ident}");
    let key = generated.key;
    let namespace = &generated.namespace;
    let once = matches!(kind, Kind::Once);
    let needs = sig
        .extras
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as #public::FromDelivery>::NEEDS));
    let blocking = args.blocking.is_some();
    let policy = args.policy.expand(&public);
    let registration = quote! {
        #items

        #private::inventory::submit! {
            #private::Registration::Handler {
                namespace: #namespace,
                id: ::core::concat!(::core::module_path!(), #id),
                key: #key,
                keys: #keys,
                once: #once,
                blocking: #blocking,
                needs: &[#(#needs),*],
                callback: &#callback,
                policy: #policy,
            }
        }
    };
    // A scope for the probe's traits, when something reads the return type; a
    // handler returning `()` passed as data needs none (one item less to build).
    if probes {
        quote! {
            const _: () = {
                // Autoref specialization reads the return type; one of the three applies.
                #[allow(unused_imports)]
                use #private::{ViaHandlerOutput as _, ViaResult as _, ViaValue as _};

                #registration
            };
        }
    } else {
        registration
    }
}

impl Generated {
    /// `returned` (what the handler returned) made a `HandlerOutput`, decided by
    /// its declared type: a `Result` (whatever its spelling) or another
    /// `HandlerOutput` as it is, any other type as a success. Spanned at the
    /// return type, where an error type that is not an error is reported.
    fn read_output(&self, returned: &TokenStream) -> TokenStream {
        let private = self.runtime.private();
        let output = &self.output;
        quote_spanned! {self.output_span=>
            (&&&#private::OutputProbe::<#output>::new()).output_kind().read(#returned)
        }
    }

    /// The read probe: a closure reading the declared return type as
    /// [`read_output`](Self::read_output) does. Only its type is used (by the
    /// `const fn` building the handler's data), so it is never compiled to code.
    fn read_probe(&self) -> TokenStream {
        let output = &self.output;
        let read = self.read_output(&quote!(__r));
        quote!(|__r: #output| #read)
    }
}

/// What a handler's registration is made of.
struct Handler {
    /// Items the data refers to (the function of an `inline` handler).
    items: TokenStream,
    /// A constant: the handler's `DeclaredHandler` data.
    callback: TokenStream,
    /// Whether it reads the return type with the probe.
    probes: bool,
}

/// The handler called with `arg`, spanned at the user's parameter so that a type
/// mismatch points there.
fn call(sig: &Signature<'_>, arg: Option<TokenStream>) -> TokenStream {
    let ident = &sig.func.sig.ident;
    let extras = extra_names(sig);
    match (&sig.param, arg) {
        (Some(param), Some(arg)) => {
            let arg = respan(arg, param.ty.span());
            quote_spanned!(param.ty.span()=> #ident(#arg #(, #extras)*))
        }
        _ => quote!(#ident()),
    }
}

/// The names the values a handler takes after its event are read into.
fn extra_names(sig: &Signature<'_>) -> Vec<proc_macro2::Ident> {
    (0..sig.extras.len())
        .map(|i| quote::format_ident!("__pyventus_x{i}"))
        .collect()
}

/// Reads the values a handler takes after its event from `__cx` (its
/// delivery), each spanned at its parameter's type, where a type that is not
/// a `FromDelivery` is reported: a `Result` of their tuple.
fn read_extras(sig: &Signature<'_>, generated: &Generated) -> TokenStream {
    let public = generated.runtime.public();
    let private = generated.runtime.private();
    let reads = sig
        .extras
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as #public::FromDelivery>::from_delivery(__cx)?));
    quote! {
        (|| -> ::core::result::Result<_, #private::anyhow::Error> {
            ::core::result::Result::Ok((#(#reads,)*))
        })()
    }
}

/// A synchronous handler that takes values after its event: a closure of its
/// own, which reads them from the delivery, then calls the handler.
fn extracting_handler(
    sig: &Signature<'_>,
    shape: &EventShape<'_>,
    generated: &Generated,
) -> Handler {
    let public = generated.runtime.public();
    let private = generated.runtime.private();
    let clone = quote!(::core::clone::Clone::clone);
    let extras = extra_names(sig);
    let read = read_extras(sig, generated);
    let body = |arg: TokenStream| {
        let output = generated.read_output(&call(sig, Some(arg)));
        quote! {
            match #read {
                ::core::result::Result::Ok((#(#extras,)*)) => {
                    #output.map_err(::core::convert::Into::<#private::anyhow::Error>::into)
                }
                ::core::result::Result::Err(__err) => ::core::result::Result::Err(__err),
            }
        }
    };
    let cx = quote!(__cx: &#public::DeliveryContext<'_>);
    let (constructor, closure) = match sig.param.as_ref().map(|p| (&p.form, p)) {
        Some((Form::Ref(_) | Form::Value(_), param)) => {
            let event = event_type(&param.form, shape, &public);
            let arg = match &param.form {
                Form::Value(_) => quote!(#clone(__e)),
                _ => quote!(__e),
            };
            let body = body(arg);
            (quote!(typed_callback_in), quote!(|__e: &#event, #cx| #body))
        }
        Some((Form::Shared(_), param)) => {
            let event = event_type(&param.form, shape, &public);
            let body = body(quote!(__e));
            (
                quote!(shared_callback_in),
                quote!(|__e: ::std::sync::Arc<#event>, #cx| #body),
            )
        }
        // `&AnyEvent` (an `Arc<AnyEvent>` is refused for a synchronous handler).
        _ => {
            let body = body(quote!(__e));
            (
                quote!(any_callback_in),
                quote!(|__e: &#public::AnyEvent, #cx| #body),
            )
        }
    };
    Handler {
        items: quote! {
            fn __pyventus_callback() -> #private::EventCallback {
                #private::#constructor(#closure)
            }
        },
        callback: quote!(#private::BuiltFn(__pyventus_callback)),
        probes: true,
    }
}

/// The type of the event (or named payload) a parameter of one event is read
/// from: the attribute's event for a typed event, the parameter's own type for
/// a named event's payload.
fn event_type(form: &Form, shape: &EventShape<'_>, public: &TokenStream) -> Type {
    match (form, shape) {
        (Form::Ref(ty) | Form::Value(ty) | Form::Shared(ty), EventShape::Named) => ty.clone(),
        (_, EventShape::Typed(event)) => (*event).clone(),
        _ => syn::parse_quote!(#public::AnyEvent),
    }
}

/// A synchronous handler, as data: its `fn` pointer in the form its parameter
/// takes, for an adapter shared by every handler of its event and return type.
/// Nothing here is compiled to code of its own, except the clone of a handler
/// taking its event by value.
fn sync_handler(sig: &Signature<'_>, shape: &EventShape<'_>, generated: &Generated) -> Handler {
    let public = generated.runtime.public();
    let private = generated.runtime.private();
    let ident = &sig.func.sig.ident;
    // A handler declaring no return type returns `()`: nothing to probe.
    let probes = !matches!(sig.func.sig.output, syn::ReturnType::Default);
    let read = if probes {
        generated.read_probe()
    } else {
        quote!(#private::read_unit)
    };
    let Some(param) = &sig.param else {
        return Handler {
            items: TokenStream::new(),
            callback: quote!(#private::NoArgFn::new(#ident, #read)),
            probes,
        };
    };
    let span = param.ty.span();
    let event = event_type(&param.form, shape, &public);
    // Built at the parameter, where a parameter of another event is reported
    // (`TakesEvent`), and where the handler is coerced to its `fn` pointer.
    let handler = respan(quote!(#ident), span);
    let data = |form: TokenStream| respan(quote!(#private::#form::new::<#event>), span);
    let callback = match &param.form {
        // Nothing to read: the handler is its lane's call as it is.
        Form::Ref(_) if !probes => {
            let new = data(quote!(UnitRefFn));
            quote!(#new(#handler))
        }
        Form::Ref(_) => {
            let new = data(quote!(RefFn));
            quote!(#new(#handler, #read))
        }
        // The clone is the one line of code of its own this form needs.
        Form::Value(_) => {
            let new = data(quote!(RefFn));
            let called = call(sig, Some(quote!(::core::clone::Clone::clone(__e))));
            quote!(#new(|__e: &#event| #called, #read))
        }
        Form::Shared(_) => {
            let new = data(quote!(SharedFn));
            quote!(#new(#handler, #read))
        }
        Form::AnyRef | Form::AnyShared => quote!(#private::AnyFn::new(#handler, #read)),
    };
    Handler {
        items: TokenStream::new(),
        callback,
        probes,
    }
}

/// A synchronous handler with `inline`: a closure of its own, which calls the
/// handler directly (so it can be inlined into its adapter).
fn inline_handler(sig: &Signature<'_>, shape: &EventShape<'_>, generated: &Generated) -> Handler {
    let public = generated.runtime.public();
    let private = generated.runtime.private();
    let clone = quote!(::core::clone::Clone::clone);
    let body = |arg: Option<TokenStream>| generated.read_output(&call(sig, arg));
    let (constructor, closure) = match &sig.param {
        None => {
            let body = body(None);
            (quote!(any_callback), quote!(|_: &#public::AnyEvent| #body))
        }
        Some(param) => {
            let event = event_type(&param.form, shape, &public);
            match &param.form {
                Form::Ref(_) => {
                    let body = body(Some(quote!(__e)));
                    (quote!(typed_callback), quote!(|__e: &#event| #body))
                }
                Form::Value(_) => {
                    let body = body(Some(quote!(#clone(__e))));
                    (quote!(typed_callback), quote!(|__e: &#event| #body))
                }
                Form::Shared(_) => {
                    let body = body(Some(quote!(__e)));
                    (
                        quote!(shared_callback),
                        quote!(|__e: ::std::sync::Arc<#event>| #body),
                    )
                }
                Form::AnyRef | Form::AnyShared => {
                    let body = body(Some(quote!(__e)));
                    (
                        quote!(any_callback),
                        quote!(|__e: &#public::AnyEvent| #body),
                    )
                }
            }
        }
    };
    Handler {
        items: quote! {
            fn __pyventus_callback() -> #private::EventCallback {
                #private::#constructor(#closure)
            }
        },
        callback: quote!(#private::BuiltFn(__pyventus_callback)),
        probes: true,
    }
}

/// An `async fn` handler: one function of its own, which calls it and boxes
/// its future (a type only this handler has); the rest is shared.
fn async_handler(sig: &Signature<'_>, shape: &EventShape<'_>, generated: &Generated) -> Handler {
    let public = generated.runtime.public();
    let private = generated.runtime.private();
    let clone = quote!(::core::clone::Clone::clone);
    let settle = |arg: Option<TokenStream>| {
        let called = call(sig, arg);
        let result = generated.read_output(&quote!(#called.await));
        quote!(#private::outcome(#result))
    };
    let body = match &sig.param {
        None => settle(None),
        Some(param) => {
            let payload = match (&param.form, shape) {
                (Form::Ref(ty) | Form::Value(ty) | Form::Shared(ty), EventShape::Named) => {
                    Some(ty.clone())
                }
                (Form::Ref(_) | Form::Value(_) | Form::Shared(_), EventShape::Typed(event)) => {
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
    if sig.extras.is_empty() {
        return Handler {
            items: TokenStream::new(),
            probes: true,
            callback: quote! {
                #private::AsyncFn(|__ev: ::std::sync::Arc<#public::AnyEvent>| {
                    #private::boxed(async move { #body })
                })
            },
        };
    }
    // The values after its event are read before its future starts.
    let extras = extra_names(sig);
    let read = read_extras(sig, generated);
    Handler {
        items: TokenStream::new(),
        probes: true,
        callback: quote! {
            #private::AsyncInFn(|__ev: ::std::sync::Arc<#public::AnyEvent>, __cx: &#public::DeliveryContext<'_>| {
                let __extras = #read;
                #private::boxed(async move {
                    let (#(#extras,)*) = __extras?;
                    #body
                })
            })
        },
    }
}
