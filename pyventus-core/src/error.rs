//! The library's error type, and the error a panicking handler becomes.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Everything that can go wrong when subscribing, emitting or processing.
///
/// Every variant carries what a user needs to fix the call: the event, the limit,
/// the two types that collided. Handler failures are not `Error`s: they go to the
/// subscriber's failure callback as an [`anyhow::Error`].
///
/// # Examples
///
/// ```
/// use pyventus_core::{Error, EventEmitter, InlineProcessingService};
///
/// let emitter = EventEmitter::new(InlineProcessingService::default());
/// let err = emitter.emit_named("", ()).unwrap_err();
/// assert!(matches!(err, Error::EmptyEventName));
/// assert_eq!(err.to_string(), "event name is empty; name the event with a non-empty string");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A named event (or an `Event` implementation) with an empty name.
    #[error("event name is empty; name the event with a non-empty string")]
    EmptyEventName,

    /// `"..."` was used as a named event, or as an `Event`'s `NAME`; it is the
    /// global event's name.
    #[error(
        "`...` names the global event; use `EventKey::any()` or `linker.on_any()` to subscribe \
         to it, `emitter.emit_global()` or `emitter.emit_named(\"...\", payload)` to emit it, \
         and another name for your own event"
    )]
    ReservedEventName,

    /// A builder setting that cannot work.
    #[error("`{setting}` {problem}")]
    InvalidSetting {
        /// The setting, as the builder method names it.
        setting: &'static str,
        /// What is wrong with it, and what to do instead.
        problem: &'static str,
    },

    /// A subscription listed no events.
    #[error("no events to subscribe to; give at least one event key")]
    NoEvents,

    /// The event already has as many subscribers as the linker allows.
    #[error(
        "event `{event}` already has {limit} subscriber(s), the linker's `max_subscribers`; \
         remove one first or build the linker with a higher limit"
    )]
    MaxSubscribers {
        /// The event that is full.
        event: String,
        /// The linker's limit.
        limit: usize,
    },

    /// Two different types claim the same event name in one linker.
    #[error(
        "event name `{name}` is claimed by two types, `{existing}` and `{new}`; \
         give one of them another name with `#[event(name = \"...\")]`"
    )]
    NameConflict {
        /// The contested name.
        name: String,
        /// The type that holds the name in this linker.
        existing: &'static str,
        /// The type that tried to use it.
        new: &'static str,
    },

    /// A payload of one type was emitted (or delivered) where another was expected.
    #[error("event `{event}` carries a `{found}`, but `{expected}` was expected")]
    PayloadType {
        /// The event's name.
        event: String,
        /// The type the subscriber (or the event's owner) expects.
        expected: &'static str,
        /// The type that was emitted.
        found: &'static str,
    },

    /// A success callback that takes a different type than its handler returns.
    #[error(
        "the success callback takes `{expected}`, but the handler returns `{found}`; \
         make the callback take `{found}`"
    )]
    SuccessType {
        /// What the success callback takes.
        expected: &'static str,
        /// What the event callback returns on success.
        found: &'static str,
    },

    /// A link-time handler with two `#[on_success]` (or `#[on_failure]`) callbacks.
    #[error("handler `{handler}` has more than one {callback} callback; keep one")]
    DuplicateCallback {
        /// The handler's id.
        handler: String,
        /// `"success"` or `"failure"`.
        callback: &'static str,
    },

    /// Two link-time handlers with the same id in one linker: functions of one
    /// name declared in two function bodies of one module.
    #[error(
        "two link-time handlers in one linker have the id `{id}` (functions of the same name \
         in two function bodies of one module); rename one of them"
    )]
    DuplicateHandlerId {
        /// The id both handlers have.
        id: String,
    },

    /// A link-time callback names a handler whose key another handler
    /// has too: `#[on]` makes one key per expansion, so only a compiler that
    /// forgets what the macro counted between expansions leaves two handlers
    /// one key (see the macro's `handler_key`).
    #[error(
        "`{path}`, named by a link-time callback in `{module}`, is `{first}` or `{second}`: \
         `#[on]` gave both handlers one key, so which one cannot be told; give each its own \
         name, or subscribe the callback at runtime"
    )]
    AmbiguousHandler {
        /// The path the callback names its handler with.
        path: String,
        /// The callback's module.
        module: String,
        /// One handler the callback may name.
        first: String,
        /// Another.
        second: String,
    },

    /// Two link-time default callbacks of the same kind in one linker.
    #[error(
        "`{first}` and `{second}` are both the default {callback} callback of one linker; keep one"
    )]
    DuplicateDefault {
        /// One callback's id.
        first: &'static str,
        /// The other's.
        second: &'static str,
        /// `"success"` or `"failure"`.
        callback: &'static str,
    },

    /// The processing service did not accept the emission.
    #[error("the processing service refused the emission: {reason}")]
    ProcessorRefused {
        /// Why, in the processor's words.
        reason: String,
    },

    /// The processing service was shut down.
    #[error("the processing service is shut down and takes no more emissions")]
    ProcessorClosed,

    /// An event that cannot be sent to another process.
    #[error(
        "event `{event}` (`{type_name}`) cannot cross a process: derive `Serialize` and `Deserialize` \
         beside `Event` on a typed event (named events stay in one process)"
    )]
    NotSerializable {
        /// The event's name.
        event: String,
        /// Its payload's type.
        type_name: &'static str,
    },

    /// An event whose serialization failed.
    #[error("event `{event}` could not be serialized: {reason}")]
    Encode {
        /// The event's name.
        event: String,
        /// What serde said.
        reason: String,
    },

    /// A closure subscribed at runtime cannot run in a worker process.
    #[error(
        "event `{event}` has a subscriber made at runtime, which a worker process cannot run; \
         declare it with `#[on]`, or emit through a local processing service"
    )]
    RuntimeSubscriberRemote {
        /// The event's name.
        event: String,
    },

    /// A processing service's backend (a broker, a database) failed to take the
    /// emission; the source says why.
    #[error("{processor}: {source}")]
    Processor {
        /// Which processing service: `"redis"`, `"amqp"`, ...
        processor: &'static str,
        /// The backend's own error.
        #[source]
        source: ProcessorSource,
    },

    /// A handler takes a [`State<T>`](crate::State) that nobody provided to its
    /// linker.
    #[error(
        "no `{state}` was provided to the linker `{linker}`, and a handler takes it: call \
         `linker.provide(...)` (or `.state(...)` on the linker's, the emitter's or the \
         worker's builder) at startup, in every process that runs the handler"
    )]
    MissingState {
        /// The state's type.
        state: &'static str,
        /// The linker's name.
        linker: String,
    },

    /// A second responder for a request that takes exactly one.
    #[error(
        "request `{request}` already has a responder ({existing}), and a request has exactly \
         one: remove {new}, or declare the request with `#[request(..., many)]` to ask all \
         its responders with `collect`"
    )]
    TwoResponders {
        /// The request's event name.
        request: String,
        /// The responder already subscribed (its handler id, or `a runtime responder`).
        existing: String,
        /// The one refused.
        new: String,
    },

    /// An event that arrived from elsewhere, that nothing here handles.
    #[error("no handler for event `{event}` in this process")]
    NoHandler {
        /// The event's name.
        event: String,
    },

    /// A wait that could never finish: waiting, from where it runs, on what
    /// waits for it (a handler waiting for its own processing service, a
    /// request waiting for emissions that run after its response).
    #[error("{0}")]
    WouldDeadlock(String),

    /// The emission was dropped before its subscribers ran (its processor went away).
    #[error("the emission was dropped before its subscribers ran")]
    EmissionDropped,

    /// The processor runs emissions elsewhere, so their completion cannot be awaited here.
    #[error(
        "this processing service runs emissions in another process; there is nothing to wait for here"
    )]
    NotAwaitable,
}

impl Error {
    /// A backend's error, keeping it as the source.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::Error;
    /// use std::error::Error as _;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let err = Error::processor("my-queue", io);
    /// assert_eq!(err.to_string(), "my-queue: refused");
    /// assert!(err.source().unwrap().downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn processor(
        processor: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Processor {
            processor,
            source: ProcessorSource(Arc::new(source)),
        }
    }
}

/// A processing service backend's error, shared so that [`Error`] stays
/// `Clone`. It derefs to the error itself, which is also what
/// [`Error::source`](std::error::Error::source) returns. Two are equal when
/// they are the same error (one failure, cloned), not merely alike.
#[derive(Clone)]
pub struct ProcessorSource(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl PartialEq for ProcessorSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ProcessorSource {}

impl std::ops::Deref for ProcessorSource {
    type Target = dyn std::error::Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for ProcessorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ProcessorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// The error a failure callback receives when a handler panicked.
///
/// Panics in handlers are contained: the panic becomes this error, goes to the
/// failure callback (or the linker's default) and is logged; the other subscribers,
/// the emitter and the processor carry on.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, HandlerPanic, InlineProcessingService};
/// use std::sync::{Arc, Mutex};
///
/// let linker = EventLinker::new();
/// let seen = Arc::new(Mutex::new(None));
/// let slot = seen.clone();
/// linker
///     .on_named("Boom")
///     .on_failure(move |err: &anyhow::Error| {
///         *slot.lock().unwrap() = err.downcast_ref::<HandlerPanic>().map(|p| p.message().to_owned());
///     })
///     .subscribe(|| -> () { panic!("kaboom") })?;
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit_named("Boom", ())?;
/// assert_eq!(seen.lock().unwrap().as_deref(), Some("kaboom"));
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerPanic {
    message: String,
}

impl HandlerPanic {
    pub(crate) fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        };
        HandlerPanic { message }
    }

    /// A panic with this message (one that happened in another process).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn from_message(message: String) -> Self {
        HandlerPanic { message }
    }

    /// The panic's message (`"a panic with a non-string payload"` when it had none).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler panicked: {}", self.message)
    }
}

impl std::error::Error for HandlerPanic {}
