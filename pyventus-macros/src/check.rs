//! The checks of names and parameters every attribute makes, in one place:
//! an event's name, a handler's parameter for the shape of its events, a
//! callback's parameter. Each is a spanned error that says what to write.

use syn::{LitStr, Type};

use crate::signature::{Form, Outcome, Signature};

/// What the handler's events make of its parameter.
pub(crate) enum EventShape<'a> {
    /// One typed event.
    Typed(&'a Type),
    /// One named event.
    Named,
    /// Several events, or the global event.
    Many,
}

/// An event's name: not empty, and not the global event's.
pub(crate) fn event_name(name: &LitStr) -> syn::Result<()> {
    match name.value().as_str() {
        "" => Err(syn::Error::new_spanned(
            name,
            "event name is empty; write a non-empty name",
        )),
        "..." => Err(syn::Error::new_spanned(
            name,
            "`...` names the global event; pick another name",
        )),
        _ => Ok(()),
    }
}

/// The parameter forms each event shape allows a handler.
pub(crate) fn handler_param(sig: &Signature<'_>, shape: &EventShape<'_>) -> syn::Result<()> {
    let Some(param) = &sig.param else {
        return Ok(());
    };
    let error = |message: &str| Err(syn::Error::new_spanned(&param.ty, message));
    match (&param.form, shape, sig.is_async) {
        (Form::AnyShared, _, false) => error(
            "a synchronous handler borrows the event: take `&AnyEvent` (`Arc<AnyEvent>` is for `async fn`)",
        ),
        (Form::Ref(_) | Form::Value(_) | Form::Shared(_), EventShape::Many, _) => error(
            "a handler of several events, or of the global event, cannot know the event's type: \
             take `&AnyEvent` and downcast it (`e.downcast_ref::<T>()`), or nothing",
        ),
        (Form::Shared(_), EventShape::Named, _) => {
            error("a named event's payload is lent to its handlers: take `&T` (or `T`, cloned)")
        }
        _ => Ok(()),
    }
}

/// The parameter each callback may take (`default`: a linker's default
/// callback, with no handler named).
pub(crate) fn callback_param(
    outcome: Outcome,
    sig: &Signature<'_>,
    default: bool,
) -> syn::Result<()> {
    let Some(param) = &sig.param else {
        return Ok(());
    };
    let message = match (outcome, default, &param.form) {
        (Outcome::Success, false, Form::Value(_)) | (Outcome::Failure, _, Form::Ref(_)) => {
            return Ok(());
        }
        (Outcome::Success, true, Form::Ref(_)) => return Ok(()),
        (Outcome::Success, false, _) => {
            "a success callback takes its handler's `Ok` value by value, or nothing"
        }
        (Outcome::Success, true, _) => {
            "a default success callback takes `&dyn Any` (downcast it), or nothing"
        }
        (Outcome::Failure, _, _) => "a failure callback takes `&anyhow::Error`, or nothing",
    };
    Err(syn::Error::new_spanned(&param.ty, message))
}
