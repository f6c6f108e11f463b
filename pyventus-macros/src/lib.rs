//! Procedural macros of [pyventus](https://docs.rs/pyventus). Use them through the
//! `pyventus` facade, which documents each one.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod event;
mod path;

/// Derives `Event` for a struct or enum: the event's name (its dispatch key) is
/// the type's identifier, or `#[event(name = "...")]`.
///
/// ```ignore
/// #[derive(Debug, Clone, Event)]
/// struct OrderCreated { order_id: u64 }
///
/// #[derive(Debug, Event)]
/// #[event(name = "order.cancelled")]
/// struct OrderCancelled { order_id: u64 }
/// ```
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
