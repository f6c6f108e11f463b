//! Link-time registration: what the declarative macros submit through `inventory`,
//! and how a linker collects it on first use.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::handler::declared::{DeclaredHandler, DeclaredResponder, DeclaredSuccess};
use crate::linker::EventLinkerBuilder;
use crate::registry::callback::EventCallback;
use crate::registry::record::{Responder, SubscriberParts};
use crate::resilience::Policy;
use crate::workflow::SuccessCallback;
use crate::workflow::extract::StateNeed;
use crate::{Error, Event, EventKey, EventLinker};

/// The namespace of a registration: `None` for the global linker, or the
/// `TypeId` of a `#[derive(Linker)]` type.
pub type Namespace = Option<fn() -> TypeId>;

/// One event a link-time handler is linked to, as constant data: a typed key
/// is built by `EventKey::of::<E>`, one function per event type whichever
/// handlers share it.
#[derive(Clone, Copy)]
pub enum KeySpec {
    /// A typed event: `EventKey::of::<E>`.
    Typed(fn() -> EventKey),
    /// A named event.
    Named(&'static str),
    /// The global event.
    Any,
}

/// The keys of a handler of the one typed event `Self`: one slice per event
/// type, where a slice written in each registration is built per handler.
/// Every event is one; the message is `Event`'s, as the bound it stands for.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an `Event`",
    note = "add `#[derive(Event)]` to `{Self}`, or subscribe to a named event with a string: `#[on(\"Name\")]`"
)]
pub trait EventKeys {
    /// `[KeySpec::Typed(EventKey::of::<Self>)]`.
    const ONE: &'static [KeySpec];
}

impl<E: Event> EventKeys for E {
    const ONE: &'static [KeySpec] = &[KeySpec::Typed(EventKey::of::<E>)];
}

impl KeySpec {
    /// The key.
    pub fn key(self) -> EventKey {
        match self {
            KeySpec::Typed(of) => of(),
            KeySpec::Named(name) => EventKey::named(name),
            KeySpec::Any => EventKey::any(),
        }
    }
}

/// One item submitted at link time by the declarative macros. Everything in it
/// is a constant, a function pointer or a reference to constant data, as
/// `inventory::submit!` requires: a handler costs no code of its own beyond
/// what `inventory` needs to link it.
pub enum Registration {
    /// A handler (`#[on]`, `#[once]`).
    Handler {
        /// Its linker.
        namespace: Namespace,
        /// Its stable id: `module::path::function`.
        id: &'static str,
        /// Its key, which its callbacks name it by (`HandlerInfo::KEY`).
        key: u64,
        /// The events it is linked to.
        keys: &'static [KeySpec],
        /// Whether it is one-time.
        once: bool,
        /// Whether a sync body runs off the async workers.
        blocking: bool,
        /// The states it takes after its event (`None` for what is not a
        /// state), for [`verify`] and a worker's startup.
        needs: &'static [Option<StateNeed>],
        /// The handler, which makes its event callback.
        callback: &'static dyn DeclaredHandler,
        /// Its policy (`retries = ...`, `timeout = ...`), checked by the macro.
        policy: Option<Policy>,
    },
    /// `#[on_success(handler)]`.
    Success {
        /// The handler's key.
        handler: u64,
        /// The callback's module and the path it names its handler with, for
        /// an error.
        named: (&'static str, &'static str),
        /// The callback.
        callback: &'static dyn DeclaredSuccess,
    },
    /// `#[on_failure(handler)]`.
    Failure {
        /// The handler's key.
        handler: u64,
        /// The callback's module and the path it names its handler with, for
        /// an error.
        named: (&'static str, &'static str),
        /// The callback.
        callback: fn(&anyhow::Error),
    },
    /// A bare `#[on_success]`: the linker's default success callback.
    DefaultSuccess {
        /// Its linker.
        namespace: Namespace,
        /// The callback's id, for error messages.
        id: &'static str,
        /// The callback.
        callback: fn(&dyn Any),
    },
    /// A bare `#[on_failure]`: the linker's default failure callback.
    DefaultFailure {
        /// Its linker.
        namespace: Namespace,
        /// The callback's id, for error messages.
        id: &'static str,
        /// The callback.
        callback: fn(&anyhow::Error),
    },
    /// A responder (`#[respond]`).
    Responder {
        /// Its linker.
        namespace: Namespace,
        /// Its stable id: `module::path::function`.
        id: &'static str,
        /// Makes the responder: its request's key and its callback.
        responder: fn() -> DeclaredResponder,
    },
    /// A namespace (`#[derive(Linker)]`), for [`verify`].
    Namespace {
        /// Its type's path, as `std::any::type_name` gives it.
        name: fn() -> &'static str,
        /// Its linker, built on first use.
        try_linker: fn() -> Result<EventLinker, Error>,
    },
}

inventory::collect!(Registration);

/// The global namespace, built from the link-time handlers.
impl EventLinker {
    /// The global namespace: every link-time handler declared without
    /// `linker = ...`, collected on first use.
    ///
    /// # Panics
    ///
    /// On first use, if the link-time handlers cannot be linked (two types claim
    /// one event name). [`EventLinker::try_global`] returns the error instead.
    pub fn global() -> EventLinker {
        Self::try_global().unwrap_or_else(|err| {
            panic!(
                "pyventus: cannot build the global linker: {err} \
                     (`pyventus::verify()` in a test finds this before it runs)"
            )
        })
    }

    /// A new linker holding every link-time handler of the global namespace,
    /// linked afresh: its `#[once]` handlers unclaimed, no state provided,
    /// nothing subscribed at runtime. What a test runs the declared handlers
    /// on, so that one test's `#[once]` or subscription does not leak into
    /// another's (each call is a copy of its own).
    ///
    /// # Errors
    ///
    /// As [`try_global`](Self::try_global).
    ///
    /// # Examples
    ///
    /// ```
    /// let copy = pyventus_core::EventLinker::isolated_global()?;
    /// assert!(!copy.ptr_eq(&pyventus_core::EventLinker::global()));
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn isolated_global() -> Result<EventLinker, Error> {
        collect(None, EventLinker::builder().name("global (isolated)"))
    }

    /// The global namespace, or why its link-time handlers cannot be linked.
    pub fn try_global() -> Result<EventLinker, Error> {
        static GLOBAL: OnceLock<Result<EventLinker, Error>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| collect(None, EventLinker::builder().name("global")))
            .clone()
    }
}

fn in_namespace(namespace: Namespace, wanted: Option<TypeId>) -> bool {
    namespace.map(|f| f()) == wanted
}

/// Builds the linker of a namespace from every registration linked into the binary.
pub(crate) fn collect(
    wanted: Option<TypeId>,
    mut builder: EventLinkerBuilder,
) -> Result<EventLinker, Error> {
    let registrations = || inventory::iter::<Registration>.into_iter();

    let handlers = linked(wanted)?;

    // Keep the callbacks of this namespace's handlers, so a mistake in one
    // namespace fails that namespace only. A callback names its handler by
    // its key (`callback_target`).
    // Made at the first callback: a linker of handlers alone never needs it.
    let keyed = std::cell::OnceCell::new();
    let mut successes: HashMap<&'static str, SuccessCallback> = HashMap::new();
    let mut failures: HashMap<&'static str, fn(&anyhow::Error)> = HashMap::new();
    let mut default_success: Option<&'static str> = None;
    let mut default_failure: Option<&'static str> = None;
    let ours =
        |key: u64, named| callback_target(keyed.get_or_init(handlers_by_key), key, named, wanted);
    for item in registrations() {
        match item {
            Registration::Success {
                handler,
                named,
                callback,
            } => {
                if let Some(id) = ours(*handler, *named)?
                    && successes.insert(id, callback.callback()).is_some()
                {
                    return Err(duplicate(id, "success"));
                }
            }
            Registration::Failure {
                handler,
                named,
                callback,
            } => {
                if let Some(id) = ours(*handler, *named)?
                    && failures.insert(id, *callback).is_some()
                {
                    return Err(duplicate(id, "failure"));
                }
            }
            Registration::DefaultSuccess {
                namespace,
                id,
                callback,
            } if in_namespace(*namespace, wanted) => {
                if let Some(first) = default_success.replace(id) {
                    return Err(duplicate_default(first, id, "success"));
                }
                builder = builder.default_success(*callback);
            }
            Registration::DefaultFailure {
                namespace,
                id,
                callback,
            } if in_namespace(*namespace, wanted) => {
                if let Some(first) = default_failure.replace(id) {
                    return Err(duplicate_default(first, id, "failure"));
                }
                builder = builder.default_failure(*callback);
            }
            _ => {}
        }
    }

    let linker = builder.try_build()?;
    let responders = responders(wanted);
    // One publication for every handler: collecting N handlers costs O(N).
    let mut all = Vec::with_capacity(handlers.len() + responders.len());
    for handler in handlers {
        let callback = match handler.policy {
            Some(policy) => EventCallback::guarded(handler.callback.callback(), policy)?,
            None => handler.callback.callback(),
        };
        let parts = SubscriberParts {
            once: handler.once,
            blocking: handler.blocking,
            needs: handler.needs,
            handler_id: Some(handler.id),
            callback,
            success: successes.remove(handler.id),
            failure: failures.remove(handler.id).map(|f| Arc::new(f) as _),
            gate: None,
            responder: None,
        };
        let keys: Vec<EventKey> = handler.keys.iter().map(|key| key.key()).collect();
        all.push((keys, parts));
    }
    all.extend(responders);
    linker.subscribe_all(all)?;
    Ok(linker)
}

/// The handler registrations of a namespace, in a stable order, or why two
/// of them cannot both be linked.
fn linked(wanted: Option<TypeId>) -> Result<Vec<Linked>, Error> {
    let mut handlers: Vec<_> = inventory::iter::<Registration>
        .into_iter()
        .filter_map(|item| match item {
            Registration::Handler {
                namespace,
                id,
                key: _,
                keys,
                once,
                blocking,
                needs,
                callback,
                policy,
            } if in_namespace(*namespace, wanted) => Some(Linked {
                id,
                keys,
                once: *once,
                blocking: *blocking,
                needs,
                callback: *callback,
                policy: *policy,
            }),
            _ => None,
        })
        .collect();
    // Link order is the linker's choice; subscription order should not be.
    handlers.sort_by_key(|h| h.id);
    // Two handlers with one id would be one name for two functions (same-named
    // functions in two function bodies of one module).
    if let Some(pair) = handlers.windows(2).find(|pair| pair[0].id == pair[1].id) {
        return Err(Error::DuplicateHandlerId {
            id: pair[0].id.to_owned(),
        });
    }
    Ok(handlers)
}

/// Every handler registration of every namespace by its key: `#[on]` makes
/// one key per handler.
fn handlers_by_key() -> HashMap<u64, Vec<(Namespace, &'static str)>> {
    let mut keyed: HashMap<u64, Vec<(Namespace, &'static str)>> = HashMap::new();
    for item in inventory::iter::<Registration> {
        if let Registration::Handler {
            namespace, id, key, ..
        } = item
        {
            keyed.entry(*key).or_default().push((*namespace, *id));
        }
    }
    keyed
}

/// The handler of the namespace `wanted` a callback names: the one of its
/// key. `None` for a handler of another namespace, or for a key no handler
/// has (a handler of a crate not linked in). Two handlers of one key (which
/// `#[on]` does not make, see its `handler_key`) fail the namespace of either
/// rather than take a guess.
fn callback_target(
    keyed: &HashMap<u64, Vec<(Namespace, &'static str)>>,
    key: u64,
    (module, path): (&'static str, &'static str),
    wanted: Option<TypeId>,
) -> Result<Option<&'static str>, Error> {
    let ours = |(namespace, id): &(Namespace, &'static str)| {
        in_namespace(*namespace, wanted).then_some(*id)
    };
    match keyed.get(&key).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([handler]) => Ok(ours(handler)),
        Some(handlers) if handlers.iter().all(|handler| ours(handler).is_none()) => Ok(None),
        Some(handlers) => {
            // In id order: the link order is the linker's choice.
            let mut ids: Vec<&str> = handlers.iter().map(|(_, id)| *id).collect();
            ids.sort_unstable();
            Err(Error::AmbiguousHandler {
                path: path.to_owned(),
                module: module.to_owned(),
                first: ids[0].to_owned(),
                second: ids[1].to_owned(),
            })
        }
    }
}

/// A handler registration of the linker being collected.
struct Linked {
    id: &'static str,
    keys: &'static [KeySpec],
    once: bool,
    blocking: bool,
    needs: &'static [Option<StateNeed>],
    callback: &'static dyn DeclaredHandler,
    policy: Option<Policy>,
}

/// The responders (`#[respond]`) of a namespace, with their events, in a
/// stable order: of two responders of one request, the same one is refused.
fn responders(wanted: Option<TypeId>) -> Vec<(Vec<EventKey>, SubscriberParts)> {
    let mut responders: Vec<_> = inventory::iter::<Registration>
        .into_iter()
        .filter_map(|item| match item {
            Registration::Responder {
                namespace,
                id,
                responder,
            } if in_namespace(*namespace, wanted) => {
                let DeclaredResponder {
                    key,
                    many,
                    callback,
                } = responder();
                let kind = if many {
                    Responder::OneOf
                } else {
                    Responder::Only
                };
                Some((
                    vec![key],
                    SubscriberParts::responder(callback, Some(*id), kind),
                ))
            }
            _ => None,
        })
        .collect();
    responders.sort_by_key(|(_, parts)| parts.handler_id);
    responders
}

fn duplicate(handler: &'static str, callback: &'static str) -> Error {
    Error::DuplicateCallback {
        handler: handler.to_owned(),
        callback,
    }
}

fn duplicate_default(first: &'static str, second: &'static str, callback: &'static str) -> Error {
    Error::DuplicateDefault {
        first,
        second,
        callback,
    }
}

/// Builds every linker of this binary that has link-time handlers (the
/// global one and each `#[derive(Linker)]` namespace) and reports every one
/// that cannot be built, instead of the first `emit` finding one out and
/// panicking: two event types that claim one name, two handlers with one id,
/// a handler with two success callbacks, more handlers than a namespace's
/// `max_subscribers`; and every [`State`](crate::State) a handler takes that
/// nobody provided to its linker yet (call it after providing them). Call it in one test, and a mistake anywhere in the
/// binary fails there.
///
/// It finds the namespaces `#[derive(Linker)]` declares (each registers
/// itself at link time); a type that implements [`Linker`](crate::Linker) by
/// hand is not among them.
///
/// # Errors
///
/// [`VerifyError`], which lists each linker that cannot be built and why.
///
/// # Examples
///
/// In a test of your crate (`#[test] fn every_handler_links()`), unwrapped:
/// a failure prints each broken linker and why.
///
/// ```
/// pyventus_core::verify().unwrap();
/// ```
pub fn verify() -> Result<(), VerifyError> {
    let mut failures = Vec::new();
    let mut check = |name: &'static str, linker: Result<EventLinker, Error>| match linker {
        Ok(linker) => {
            // A handler whose state nobody provided would fail each delivery.
            for (_handler, state) in linker.missing_states() {
                failures.push((
                    name,
                    Error::MissingState {
                        state,
                        linker: linker.name().to_owned(),
                    },
                ));
            }
        }
        Err(error) => failures.push((name, error)),
    };
    check("global", EventLinker::try_global());
    let mut seen: Vec<fn() -> Result<EventLinker, Error>> = Vec::new();
    for item in inventory::iter::<Registration> {
        if let Registration::Namespace { name, try_linker } = item {
            // A type derives `Linker` once; `inventory` lists it once. Kept
            // safe against a list that repeats itself all the same.
            if seen.iter().any(|f| std::ptr::fn_addr_eq(*f, *try_linker)) {
                continue;
            }
            seen.push(*try_linker);
            check(name(), try_linker());
        }
    }
    failures.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    failures.sort_by_key(|(name, _)| *name);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(VerifyError { failures })
    }
}

/// The linkers [`verify`] could not build, each with why.
pub struct VerifyError {
    failures: Vec<(&'static str, Error)>,
}

impl VerifyError {
    /// Each linker that cannot be built (`global`, or the namespace type's
    /// path), with its error.
    pub fn failures(&self) -> &[(&'static str, Error)] {
        &self.failures
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.failures.len();
        write!(
            f,
            "{count} linker{} cannot be built:",
            if count == 1 { "" } else { "s" }
        )?;
        for (linker, error) in &self.failures {
            write!(f, "\n  - {linker}: {error}")?;
        }
        Ok(())
    }
}

/// The same as `Display`: `verify().unwrap()` in a test prints the list.
impl std::fmt::Debug for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for VerifyError {}
