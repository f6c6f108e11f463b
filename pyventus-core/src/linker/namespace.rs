//! Namespaces: types that own a linker of their own (`#[derive(Linker)]`).

use std::any::TypeId;
use std::sync::{Arc, OnceLock};

use crate::resilience::{Middleware, Policy};
use crate::{Error, EventLinker};

/// A namespace with its own [`EventLinker`], holding the link-time handlers
/// declared with `linker = ThisType`: Pyventus's `EventLinker` subclasses.
///
/// Implement it with `#[derive(Linker)]`, which also gives the type an inherent
/// `linker()` so callers need not import this trait.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventLinker, Linker};
///
/// // What `#[derive(Linker)] #[linker(max_subscribers = 10)] struct UserLinker;` writes:
/// struct UserLinker;
///
/// impl Linker for UserLinker {
///     fn try_linker() -> Result<EventLinker, pyventus_core::Error> {
///         static LINKER: std::sync::OnceLock<Result<EventLinker, pyventus_core::Error>> =
///             std::sync::OnceLock::new();
///         pyventus_core::__private::namespace_linker::<Self>(
///             &LINKER, "UserLinker", Some(10), None, None, Vec::new,
///         )
///     }
/// }
///
/// let linker = UserLinker::linker();
/// assert_eq!(linker.name(), "UserLinker");
/// assert_eq!(linker.max_subscribers(), Some(10));
/// assert!(linker.ptr_eq(&UserLinker::linker()), "one linker per namespace");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a linker namespace",
    label = "not a `Linker`",
    note = "add `#[derive(Linker)]` to `{Self}`, or leave out `linker = ...` to use the global linker"
)]
pub trait Linker: 'static {
    /// The namespace's linker, built on first use with every link-time handler
    /// declared for it, or why they cannot be linked.
    fn try_linker() -> Result<EventLinker, Error>;

    /// The namespace's linker.
    ///
    /// # Panics
    ///
    /// On first use, if its link-time handlers cannot be linked (two types claim
    /// one event name, a handler has two success callbacks, ...).
    fn linker() -> EventLinker {
        Self::try_linker().unwrap_or_else(|err| {
            panic!(
                "pyventus: cannot build the linker of `{}`: {err} \
                 (`pyventus::verify()` in a test finds this before it runs)",
                std::any::type_name::<Self>()
            )
        })
    }
}

/// The namespace id of `L`, for link-time registrations.
pub fn namespace<L: Linker>() -> TypeId {
    TypeId::of::<L>()
}

/// Builds (once) the linker of the namespace `L` with its settings.
pub fn namespace_linker<L: Linker>(
    cell: &'static OnceLock<Result<EventLinker, Error>>,
    name: &'static str,
    max_subscribers: Option<usize>,
    debug: Option<bool>,
    policy: Option<Policy>,
    middleware: fn() -> Vec<Arc<dyn Middleware>>,
) -> Result<EventLinker, Error> {
    cell.get_or_init(|| {
        let mut builder = EventLinker::builder().name(name);
        if let Some(policy) = policy {
            builder = builder.default_policy(policy);
        }
        // `#[linker(middleware = ...)]`, outermost first, made once, when the
        // namespace's linker is.
        for layer in middleware() {
            builder = builder.middleware(layer);
        }
        if let Some(limit) = max_subscribers {
            builder = builder.max_subscribers(limit);
        }
        if let Some(debug) = debug {
            builder = builder.debug(debug);
        }
        crate::linker::link_time::collect(Some(TypeId::of::<L>()), builder)
    })
    .clone()
}

/// A namespace's middleware (`#[linker(middleware = expr)]`), shared. Not
/// public API: the derive writes it, so that an expression that is not a
/// [`Middleware`] is an error at the expression.
#[doc(hidden)]
pub fn middleware_layer(middleware: impl Middleware) -> Arc<dyn Middleware> {
    Arc::new(middleware)
}
