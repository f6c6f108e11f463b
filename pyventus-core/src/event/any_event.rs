//! The type-erased view of an event, `AnyEvent`, and named events (a name and a
//! payload of any type).

use std::any::{Any, type_name};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A type-erased event, as the subscribers of the global event (and multi-event
/// subscribers) see it. Always used behind a reference: `&AnyEvent` or `Arc<AnyEvent>`.
///
/// # Examples
///
/// ```
/// use pyventus_core::{AnyEvent, Event, EventEmitter, EventLinker, InlineProcessingService};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Debug)]
/// struct Ping(u32);
/// impl Event for Ping {
///     const NAME: &'static str = "Ping";
/// }
///
/// let linker = EventLinker::new();
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// linker.on_any().subscribe(move |e: &AnyEvent| {
///     let n = e.downcast_ref::<Ping>().map(|p| p.0);
///     log.lock().unwrap().push((e.name().to_owned(), n, format!("{e:?}")));
/// })?;
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit(Ping(7))?;
/// emitter.emit_named("Greet", "hi".to_string())?;
///
/// let seen = seen.lock().unwrap();
/// assert_eq!(seen[0], ("Ping".to_owned(), Some(7), "Ping(7)".to_owned()));
/// assert_eq!(seen[1].0, "Greet");
/// assert_eq!(seen[1].1, None);
/// # Ok::<(), pyventus_core::Error>(())
/// ```
pub type AnyEvent = dyn EventObject;

/// The object behind [`AnyEvent`]. Implemented by every [`Event`](crate::Event) and by named
/// payloads; not meant to be implemented by hand.
///
/// # Examples
///
/// ```
/// use pyventus_core::{AnyEvent, Event, EventObject};
///
/// #[derive(Debug)]
/// struct Ping;
/// impl Event for Ping {
///     const NAME: &'static str = "Ping";
/// }
///
/// let event: &AnyEvent = &Ping;
/// assert_eq!(event.name(), "Ping");
/// assert!(event.payload_type_name().ends_with("Ping"));
/// ```
pub trait EventObject: Any + Send + Sync {
    /// The event's name (its dispatch key).
    fn name(&self) -> &str;

    /// The payload: the typed event itself, or a named event's payload.
    fn payload(&self) -> &(dyn Any + Send + Sync);

    /// The payload's type name, for error messages.
    fn payload_type_name(&self) -> &'static str;

    /// Formats the event for `Debug`.
    fn fmt_event(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl AnyEvent {
    /// The payload as a `T`, if it is one. For a typed event `T` is the event type;
    /// for a named event it is the payload's type.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.payload().downcast_ref()
    }

    /// Whether the payload is a `T`.
    pub fn is<T: Any>(&self) -> bool {
        self.payload().is::<T>()
    }

    /// The payload as a `T`, or an [`Error::PayloadType`](crate::Error::PayloadType)
    /// naming both types.
    pub fn payload_as<T: Any>(&self) -> Result<&T, crate::Error> {
        self.downcast_ref()
            .ok_or_else(|| crate::Error::PayloadType {
                event: self.name().to_owned(),
                expected: type_name::<T>(),
                found: self.payload_type_name(),
            })
    }

    /// The shared event as `Arc<E>`, when it is a typed event `E`.
    pub(crate) fn downcast_arc<E: Any + Send + Sync>(event: &Arc<Self>) -> Option<Arc<E>> {
        let any: Arc<dyn Any + Send + Sync> = event.clone();
        any.downcast().ok()
    }
}

impl fmt::Debug for AnyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_event(f)
    }
}

/// A named event: a string key and a payload of any `Send + Sync + 'static` type.
///
/// Its name is a `Cow` on the general path; where the name is a `&'static
/// str` (`emit_named` with a literal, `emit_to` with a static key), the fast
/// path runs on a `Named<T, &'static str>` instead, which has nothing to drop
/// but its payload (a `Cow`'s tag is stored, then tested again when it drops).
pub(crate) struct Named<T, N = Cow<'static, str>> {
    pub(crate) name: N,
    pub(crate) payload: T,
}

/// A shared name (an `EventKey`'s made at run time), as the fast path
/// carries it: its `Arc` cloned, not its bytes; copied into a `Cow` only
/// when the general path takes the event, or a thread's cache keeps it.
#[derive(Clone)]
pub(crate) struct SharedName(pub(crate) Arc<str>);

impl AsRef<str> for SharedName {
    #[inline]
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<SharedName> for Cow<'static, str> {
    fn from(name: SharedName) -> Self {
        Cow::Owned(name.0.to_string())
    }
}

/// What a [`Named`] event's name may be: a `Cow<'static, str>`, a
/// `&'static str`, or a [`SharedName`].
pub(crate) trait EventName:
    AsRef<str> + Clone + Into<Cow<'static, str>> + Send + Sync + 'static
{
}

impl<N: AsRef<str> + Clone + Into<Cow<'static, str>> + Send + Sync + 'static> EventName for N {}

impl<T, N: EventName> Named<T, N> {
    /// The same event, as the general path takes it (one `Named<T>` per
    /// payload type there, whatever the name's type on the fast path).
    #[inline]
    pub(crate) fn owned(self) -> Named<T> {
        Named {
            name: self.name.into(),
            payload: self.payload,
        }
    }
}

impl<T: Send + Sync + 'static, N: AsRef<str> + Send + Sync + 'static> EventObject for Named<T, N> {
    fn name(&self) -> &str {
        self.name.as_ref()
    }

    fn payload(&self) -> &(dyn Any + Send + Sync) {
        &self.payload
    }

    fn payload_type_name(&self) -> &'static str {
        type_name::<T>()
    }

    fn fmt_event(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload need not be `Debug`; its type is what can always be shown.
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>() {
            f.write_str(self.name())
        } else {
            write!(f, "{}({})", self.name(), type_name::<T>())
        }
    }
}
