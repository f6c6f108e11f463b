//! What a handler takes beyond its event, in the manner of axum's extractors:
//! [`State<T>`], a value provided once to the linker (a database pool, a mail
//! client), in the web process and in a worker alike, and any type that
//! implements [`FromDelivery`], read from the [`DeliveryContext`] of each
//! delivery (its emission, its event, its linker's state).
//!
//! Concurrency: a linker's state is a map published through `ArcSwap`:
//! providing a value builds the next map and stores it; a handler reads it with
//! one atomic load, and only handlers that take a `State` read it at all.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::sync::{ArcSwap, Mutex, PoisonError};
use crate::workflow::Run;
use crate::{AnyEvent, CurrentEmission};

/// The values provided to one linker, by type. Not public API.
#[derive(Default)]
pub(crate) struct States {
    current: ArcSwap<StateMap>,
    /// Writers take turns (providing is rare); readers never wait.
    writing: Mutex<()>,
}

type StateMap = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

impl States {
    /// Provides `value`, replacing any value of its type.
    pub(crate) fn insert<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        let previous = {
            let _turn = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
            let mut next = StateMap::clone(&self.current.load());
            next.insert(TypeId::of::<T>(), value);
            self.current.swap(Arc::new(next))
        };
        // The previous map drops after the turn: a value it alone held (the
        // one replaced) may run user code in its `Drop`.
        drop(previous);
    }

    /// The value of type `T`, if one was provided.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.current
            .load()
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|value| value.downcast().ok())
    }

    /// Whether a value of the type `id` was provided.
    pub(crate) fn contains(&self, id: TypeId) -> bool {
        self.current.load().contains_key(&id)
    }
}

/// A state a handler needs, as `#[on]` records it for [`verify`](crate::verify)
/// and for a worker's startup. Not public API.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct StateNeed {
    /// The state's type.
    pub type_id: fn() -> TypeId,
    /// Its name, for messages.
    pub type_name: fn() -> &'static str,
}

impl fmt::Debug for StateNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str((self.type_name)())
    }
}

/// What one delivery offers a handler beyond its event: its linker's state,
/// the emission it belongs to, the event itself. [`FromDelivery`] types read
/// it.
///
/// # Examples
///
/// ```
/// use pyventus_core::{DeliveryContext, FromDelivery};
///
/// /// The emission's id, or 0 on the inline fast path (which builds none).
/// struct EmissionId(u64);
///
/// impl FromDelivery for EmissionId {
///     fn from_delivery(delivery: &DeliveryContext<'_>) -> Result<Self, pyventus_core::anyhow::Error> {
///         Ok(EmissionId(delivery.emission_id().unwrap_or(0)))
///     }
/// }
/// # let _ = EmissionId(0).0;
/// ```
#[derive(Clone, Copy)]
pub struct DeliveryContext<'a> {
    run: Run<'a>,
}

impl<'a> DeliveryContext<'a> {
    pub(crate) fn new(run: Run<'a>) -> Self {
        DeliveryContext { run }
    }

    /// The value of type `T` provided to the linker, if any.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.run.delivery.linker.states.get()
    }

    /// The name of the linker the handler is subscribed in.
    pub fn linker_name(&self) -> &str {
        &self.run.delivery.linker.name
    }

    /// The event being delivered.
    pub fn event(&self) -> &AnyEvent {
        self.run.delivery.event
    }

    /// The id of the emission being delivered; `None` on the inline fast path,
    /// which runs synchronous subscribers on a borrowed event and builds no
    /// emission.
    pub fn emission_id(&self) -> Option<u64> {
        self.run.delivery.emission
    }

    /// The id of the handler being run (`module::path::function`), or
    /// `"<runtime>"` for a closure subscribed at runtime.
    pub fn handler_id(&self) -> &'static str {
        self.run.workflow.handler()
    }
}

impl fmt::Debug for DeliveryContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryContext")
            .field("event", &self.event().name())
            .field("handler", &self.handler_id())
            .field("emission", &self.emission_id())
            .finish_non_exhaustive()
    }
}

/// A value a handler takes after its event, read from each delivery, as axum's
/// `FromRequestParts` reads a request: [`State<T>`], `Option<CurrentEmission>`,
/// or a type of your own.
///
/// An error fails the delivery before the handler runs: it goes to the failure
/// callbacks and the logs as the handler's own error would.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not something a handler can take after its event",
    label = "not a `FromDelivery` type",
    note = "after its event, a handler takes `State<T>` (a value provided to its linker), \
            `Option<CurrentEmission>`, or a type that implements `FromDelivery`; the event \
            itself comes first, once"
)]
pub trait FromDelivery: Sized {
    /// The state this type needs provided to the linker, if any: what
    /// [`verify`](crate::verify) and a worker's startup check. Not public API.
    #[doc(hidden)]
    const NEEDS: Option<StateNeed> = None;

    /// Reads the value from a delivery.
    ///
    /// # Errors
    ///
    /// Why the value cannot be had (a state nobody provided, say): the
    /// delivery fails with it.
    fn from_delivery(delivery: &DeliveryContext<'_>) -> Result<Self, anyhow::Error>;
}

/// A value provided once to a linker, and handed to each handler that takes
/// it (axum's `State`, apalis's `Data`): a database pool, a mail client, a
/// configuration. Provide it with [`EventLinker::provide`](crate::EventLinker::provide)
/// (or the builders' `state`, the emitter's and the workers' too), in every
/// process that runs the handler.
///
/// A handler takes it after its event; a state nobody provided fails the
/// delivery with an error naming the type and the linker, and
/// [`verify`](crate::verify) reports it before the first emit.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, State};
///
/// struct Mailer { from: &'static str }
///
/// let linker = EventLinker::new();
/// linker.provide(Mailer { from: "shop@example.com" });
/// let mailer: Option<std::sync::Arc<Mailer>> = linker.state();
/// assert_eq!(mailer.unwrap().from, "shop@example.com");
///
/// // With the macros: `#[on(OrderPlaced)] fn confirm(e: &OrderPlaced, mailer: State<Mailer>)`.
/// fn confirm(order: &u64, State(mailer): State<Mailer>) {
///     println!("order {order} confirmed by {}", mailer.from);
/// }
/// # let _ = confirm;
/// ```
pub struct State<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&&*self.0).finish()
    }
}

impl<T: Send + Sync + 'static> FromDelivery for State<T> {
    const NEEDS: Option<StateNeed> = Some(StateNeed {
        type_id: TypeId::of::<T>,
        type_name: type_name::<T>,
    });

    fn from_delivery(delivery: &DeliveryContext<'_>) -> Result<Self, anyhow::Error> {
        delivery.state().map(State).ok_or_else(|| {
            crate::Error::MissingState {
                state: type_name::<T>(),
                linker: delivery.linker_name().to_owned(),
            }
            .into()
        })
    }
}

/// The emission being delivered, when there is one (not on the inline fast
/// path): its id, its event, and what a broker's worker attached (its
/// delivery: envelope id, attempt).
impl FromDelivery for Option<CurrentEmission> {
    fn from_delivery(_: &DeliveryContext<'_>) -> Result<Self, anyhow::Error> {
        Ok(crate::current_emission())
    }
}
