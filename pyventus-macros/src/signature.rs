//! The signature of a function under a pyventus attribute, parsed into the forms
//! pyventus knows, with the checks every attribute shares.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

use crate::diagnostics::Errors;

/// What a function's one parameter asks for.
pub(crate) enum Form {
    /// `&T`
    Ref(Type),
    /// `T` (cloned from the event)
    Value(Type),
    /// `Arc<T>`
    Shared(Type),
    /// `&AnyEvent`
    AnyRef,
    /// `Arc<AnyEvent>`
    AnyShared,
}

/// A function's one parameter.
pub(crate) struct Param {
    pub(crate) form: Form,
    /// The whole parameter type, where type errors about it should point.
    pub(crate) ty: Type,
}

/// A function under a pyventus attribute, checked.
pub(crate) struct Signature<'a> {
    pub(crate) func: &'a ItemFn,
    pub(crate) param: Option<Param>,
    /// The declared return type (`()` when none is written); for an `async fn`,
    /// its future's output. Read at the type level by the generated code, so
    /// any spelling (`anyhow::Result<T>`, an alias) means what the type is.
    pub(crate) output: Type,
    pub(crate) is_async: bool,
}

/// The last segment of a type path, if the type is a path.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

/// `Arc<T>`'s `T`.
fn arc_inner(ty: &Type) -> Option<&Type> {
    let segment = last_segment(ty).filter(|s| s.ident == "Arc")?;
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first() {
        Some(GenericArgument::Type(inner)) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

fn parse_param(ty: &Type) -> syn::Result<Form> {
    if let Type::Reference(reference) = ty {
        if let Some(mutability) = reference.mutability {
            return Err(syn::Error::new_spanned(
                mutability,
                "a handler shares the event with the other subscribers; take `&T`, not `&mut T`",
            ));
        }
        let inner = (*reference.elem).clone();
        return Ok(if is_named(&inner, "AnyEvent") {
            Form::AnyRef
        } else {
            Form::Ref(inner)
        });
    }
    if let Some(inner) = arc_inner(ty) {
        return Ok(if is_named(inner, "AnyEvent") {
            Form::AnyShared
        } else {
            Form::Shared(inner.clone())
        });
    }
    Ok(Form::Value(ty.clone()))
}

fn parse_output(output: &ReturnType) -> Type {
    match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

impl<'a> Signature<'a> {
    /// Parses `func`, reporting to `errors` every shape pyventus cannot call
    /// (a parameter it cannot read is left out). `what` names the function's
    /// role in messages ("a handler", "a success callback").
    pub(crate) fn parse(func: &'a ItemFn, what: &str, errors: &mut Errors) -> Self {
        let sig = &func.sig;
        if let Some(unsafety) = &sig.unsafety {
            errors.push(syn::Error::new_spanned(
                unsafety,
                format!("{what} cannot be `unsafe fn`: pyventus calls it from safe code; wrap the unsafe part inside it"),
            ));
        }
        if let Some(abi) = &sig.abi {
            errors.push(syn::Error::new_spanned(
                abi,
                format!("{what} is a Rust function; remove the `extern` ABI"),
            ));
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            errors.push(syn::Error::new(
                sig.generics.span(),
                format!(
                    "{what} cannot be generic: an event needs one concrete function to call; \
                     write one function per type, or subscribe a closure at runtime"
                ),
            ));
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(syn::Error::new_spanned(
                variadic,
                format!("{what} cannot be variadic"),
            ));
        }
        let mut param = None;
        let mut typed_params = 0;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                    receiver,
                    format!(
                        "{what} cannot take `self`: an emission has no value to call it on; \
                         make it a free function, or subscribe a closure at runtime with \
                         `linker.on::<E>().subscribe(...)`"
                    ),
                )),
                FnArg::Typed(_) if typed_params > 0 => errors.push(syn::Error::new_spanned(
                    input,
                    format!("{what} takes at most one parameter; remove this one"),
                )),
                FnArg::Typed(typed) => {
                    typed_params += 1;
                    if let Some(form) = errors.check(parse_param(&typed.ty)) {
                        param = Some(Param {
                            form,
                            ty: (*typed.ty).clone(),
                        });
                    }
                }
            }
        }
        Signature {
            func,
            param,
            output: parse_output(&sig.output),
            is_async: sig.asyncness.is_some(),
        }
    }
}

impl Signature<'_> {
    /// The function as written (`item`, its own tokens), with an allow for
    /// clippy's `needless_pass_by_value` when its parameter is taken by value:
    /// pyventus hands it an owned value by contract, so the lint would ask for a
    /// signature pyventus cannot call.
    pub(crate) fn emit(&self, item: &TokenStream) -> TokenStream {
        match self.param.as_ref().map(|p| &p.form) {
            Some(Form::Value(_)) => quote::quote! {
                #[allow(clippy::needless_pass_by_value)]
                #item
            },
            _ => item.clone(),
        }
    }
}

/// Which callback a function is: `#[on_success]` or `#[on_failure]`.
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Outcome::Success => "on_success",
            Outcome::Failure => "on_failure",
        }
    }

    pub(crate) fn role(self) -> &'static str {
        match self {
            Outcome::Success => "a success callback",
            Outcome::Failure => "a failure callback",
        }
    }
}
