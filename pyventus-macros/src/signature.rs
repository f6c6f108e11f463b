//! The signature of a function under a pyventus attribute, parsed into the forms
//! pyventus knows, with the checks every attribute shares.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

/// `tokens` with every token placed at `span`, so the errors the compiler finds
/// in generated code point at the user's own tokens (`quote_spanned!` spans
/// only the tokens it writes, not the ones it interpolates).
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

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

/// What a function returns.
// Lives only while one attribute expands; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Output {
    /// Nothing, or `()`.
    Unit,
    /// `Result<T, E>` (any path ending in `Result`, like `anyhow::Result<T>`),
    /// with its `T` when written out.
    Result(Type, Option<Type>),
    /// Any other value.
    Value(Type),
}

/// A function under a pyventus attribute, checked.
pub(crate) struct Signature<'a> {
    pub(crate) func: &'a ItemFn,
    pub(crate) param: Option<Param>,
    pub(crate) output: Output,
    pub(crate) is_async: bool,
}

/// Expands an attribute on a function with `expand`. On error the function is
/// still emitted beside the error, so the rest of the crate type-checks
/// (tokio's `entry.rs` does the same). `attr` and `role` name the attribute and
/// what the function is, for the error on anything that is not a function.
pub(crate) fn expand_fn(
    item: TokenStream,
    attr: &str,
    role: &str,
    expand: impl FnOnce(&ItemFn) -> syn::Result<TokenStream>,
) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                format!("`#[{attr}]` goes on a function: {role}"),
            );
            return item.into_iter().chain(err.into_compile_error()).collect();
        }
    };
    match expand(&func) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens = quote::quote!(#func);
            tokens.extend(err.into_compile_error());
            tokens
        }
    }
}

/// Collects several errors, so a user fixes them in one round (serde's `Ctxt`).
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
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

/// `Result<T, ..>`'s `T`.
fn ok_of(ty: &Type) -> Option<Type> {
    let PathArguments::AngleBracketed(args) = &last_segment(ty)?.arguments else {
        return None;
    };
    match args.args.first() {
        Some(GenericArgument::Type(ok)) => Some(ok.clone()),
        _ => None,
    }
}

fn parse_output(output: &ReturnType) -> Output {
    match output {
        ReturnType::Default => Output::Unit,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit,
            ty if is_named(ty, "Result") => Output::Result(ty.clone(), ok_of(ty)),
            ty => Output::Value(ty.clone()),
        },
    }
}

impl<'a> Signature<'a> {
    /// Parses `func`, reporting every shape pyventus cannot call. `what` names
    /// the function's role in messages ("a handler", "a success callback").
    pub(crate) fn parse(func: &'a ItemFn, what: &str) -> syn::Result<Self> {
        let sig = &func.sig;
        let mut errors = Errors::default();
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
                FnArg::Typed(typed) => match parse_param(&typed.ty) {
                    Ok(form) => {
                        typed_params += 1;
                        param = Some(Param {
                            form,
                            ty: (*typed.ty).clone(),
                        });
                    }
                    Err(err) => errors.push(err),
                },
            }
        }
        errors.finish()?;
        Ok(Signature {
            func,
            param,
            output: parse_output(&sig.output),
            is_async: sig.asyncness.is_some(),
        })
    }
}

impl Signature<'_> {
    /// The function as written, with an allow for clippy's
    /// `needless_pass_by_value` when its parameter is taken by value: pyventus
    /// hands it an owned value by contract, so the lint would ask for a signature
    /// pyventus cannot call.
    pub(crate) fn emit(&self) -> TokenStream {
        let func = self.func;
        match self.param.as_ref().map(|p| &p.form) {
            Some(Form::Value(_)) => quote::quote! {
                #[allow(clippy::needless_pass_by_value)]
                #func
            },
            _ => quote::quote!(#func),
        }
    }
}
