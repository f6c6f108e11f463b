//! What is emitted, and how it is keyed.
//!
//! - [`Event`] (this file): a typed event, dispatched by its `NAME`.
//! - `any_event`: [`AnyEvent`](crate::AnyEvent), the view of any event
//!   (typed, named, the global event) that handlers of several events take,
//!   and `Named`, a named event's name and payload.
//! - `key`: [`EventKey`](crate::EventKey), the key a linker files subscribers
//!   under (a type's name, a name, or the global event), hashed once.
//! - `named_key`: [`NamedKey`](crate::NamedKey), a named event's key that knows
//!   its payload's type, and [`EmitKey`](crate::EmitKey).
//! - `slot`: the per-thread cell each event type and `NamedKey` carries, which
//!   the registry fills (`registry::thread_cache`).
//!
//! Nothing here knows the registry: events sit below everything else.

pub(crate) mod any_event;
pub(crate) mod key;
pub(crate) mod named_key;
pub(crate) mod slot;

use std::any::{Any, type_name};
use std::fmt;

use crate::EventObject;

/// A typed event: a value whose type is its identity, dispatched by [`Event::NAME`].
///
/// Derive it with `#[derive(Event)]` (the name defaults to the type's identifier,
/// `#[event(name = "...")]` overrides it). Errors can be events too: derive `Event`
/// on any error type to emit it.
///
/// # Examples
///
/// ```
/// use pyventus_core::Event;
///
/// #[derive(Debug, Clone)]
/// struct OrderCreated {
///     order_id: u64,
/// }
///
/// // What `#[derive(Event)]` writes for you:
/// impl Event for OrderCreated {
///     const NAME: &'static str = "OrderCreated";
/// }
///
/// assert_eq!(OrderCreated::NAME, "OrderCreated");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an `Event`",
    note = "add `#[derive(Event)]` to `{Self}`, or subscribe to a named event with a string: `#[on(\"Name\")]`"
)]
pub trait Event: fmt::Debug + Send + Sync + 'static {
    /// The dispatch key: the name subscribers and workers know this event by.
    const NAME: &'static str;
}

impl<E: Event> EventObject for E {
    fn name(&self) -> &str {
        E::NAME
    }

    fn payload(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn payload_type_name(&self) -> &'static str {
        type_name::<E>()
    }

    fn fmt_event(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
