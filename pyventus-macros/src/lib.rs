//! Procedural macros of [pyventus](https://docs.rs/pyventus). Use them through the
//! `pyventus` facade, which re-exports each one.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod args;
mod check;
mod diagnostics;
mod event;
mod linker;
mod names;
mod on;
mod on_outcome;
mod policy;
mod request;
mod respond;
mod signature;

/// Derives `Event`: the event's name (its dispatch key) is the type's
/// identifier, or `#[event(name = "...")]`. `#[event(crate = path)]` names the
/// pyventus crate for a crate that renames the dependency (default `::pyventus`).
///
/// Type parameters are asked to be `Debug + Send + Sync + 'static`, as `Event`
/// needs.
///
/// # Examples
///
/// ```
/// use pyventus::Event;
///
/// #[derive(Debug, Clone, Event)]
/// struct OrderCreated {
///     order_id: u64,
/// }
///
/// #[derive(Debug, Event)]
/// #[event(name = "order.cancelled")]
/// struct OrderCancelled {
///     order_id: u64,
/// }
///
/// assert_eq!(OrderCreated::NAME, "OrderCreated");
/// assert_eq!(OrderCancelled::NAME, "order.cancelled");
/// ```
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `Request`: the type is a request whose responder answers
/// `response` or fails with `error`. Options:
/// `#[request(response = Type, error = Type, many, remote, crate = path)]`;
/// `error` defaults to `std::convert::Infallible`; `many` lets several
/// responders answer it (asked with `emitter.collect(..)`), where by default a
/// second is refused; `remote` lets a worker in another process answer it
/// (through Redis: see `docs/requests.md`), and then its response and error
/// (unless `Infallible`) must derive `Serialize` and `Deserialize`, a compile
/// error at the type otherwise. The type must also be an `Event`.
///
/// # Examples
///
/// ```
/// use pyventus::{Event, EventEmitter, EventLinker, Request};
/// use std::time::Duration;
///
/// #[derive(Debug, Event, Request)]
/// #[request(response = u64, error = String)]
/// struct GetQuote {
///     symbol: String,
/// }
///
/// let linker = EventLinker::new();
/// linker.respond(|q: &GetQuote| if q.symbol == "ACME" { Ok(42) } else { Err("unknown".into()) })?;
/// let emitter = EventEmitter::builder().linker(linker).build();
/// // From synchronous code here; `.await` it in async code.
/// let quote = pyventus::runtime::block_on(
///     emitter
///         .request(GetQuote { symbol: "ACME".into() })
///         .timeout(Duration::from_secs(1)),
/// );
/// assert_eq!(quote, Ok(42));
/// # Ok::<(), pyventus::Error>(())
/// ```
#[proc_macro_derive(Request, attributes(request))]
pub fn derive_request(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    request::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `Linker`: the type names a namespace with a linker of its own, which
/// holds the handlers declared with `linker = ThisType`. Options:
/// `#[linker(max_subscribers = N, debug = bool, name = "...", crate = path)]`,
/// and a default policy for its handlers without one of their own, with the
/// options `#[on]` takes: `retries`, `backoff`, `timeout` (for its async
/// handlers), `concurrency`, `busy` (see `docs/resilience.md`).
///
/// The type gets an inherent `linker()` returning its `EventLinker`.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use pyventus::{Event, EventEmitter, Linker, on};
///
/// #[derive(Linker)]
/// #[linker(max_subscribers = 10)]
/// struct UserLinker;
///
/// #[derive(Debug, Event)]
/// struct PasswordReset {
///     email: String,
/// }
///
/// #[on(PasswordReset, linker = UserLinker)]
/// fn users_only(e: &PasswordReset) {
///     println!("user {} asked for a reset", e.email);
/// }
///
/// let linker = UserLinker::linker();
/// assert_eq!(linker.max_subscribers(), Some(10));
/// assert_eq!(linker.subscriber_count(), 1);
/// let id = concat!(module_path!(), "::users_only"); // `<crate>::<module>::users_only`
/// assert!(pyventus::EventLinker::global().handler(id).is_empty());
///
/// let emitter = EventEmitter::builder().linker(linker).build();
/// emitter.emit(PasswordReset { email: "user@example.com".into() })?;
/// # Ok::<(), pyventus::Error>(())
/// ```
#[proc_macro_derive(Linker, attributes(linker))]
pub fn derive_linker(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    linker::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Links a function to events, at link time: each emission of one of them
/// calls it. Pyventus's `@EventLinker.on(...)`.
///
/// Arguments: one or more events (a type `OrderCreated`, a name `"GreetEvent"`,
/// or `...` for every event), then options: `linker = Path` (a
/// `#[derive(Linker)]` namespace instead of the global linker), `blocking`
/// (a synchronous body runs off the async workers: Pyventus's `force_async`),
/// `inline` (a synchronous handler compiled into a closure of its own, inlined
/// into its adapter: a few instructions less per call, at the build cost of that
/// closure; by default a handler is passed as data, its `fn` pointer, and builds
/// like a plain function) and `crate = path` (where pyventus is, for a crate that renames the
/// dependency; every pyventus attribute and derive takes it). A policy for
/// when it fails, hangs or is busy: `retries = N`, `backoff = "100ms..5s"`,
/// `timeout = "2s"` (an `async fn` only), `concurrency = N` and
/// `busy = wait | refuse` (see `docs/resilience.md`). All mistakes in
/// the arguments and the signature are reported together.
///
/// The function stays a plain function, callable and testable. It may be
/// `async`, and take:
///
/// | events | parameter |
/// | --- | --- |
/// | one typed event `E` | `&E`, `E` (cloned), `Arc<E>`, `&AnyEvent`, or nothing |
/// | one named event | `&T` (or `T`, cloned) for its payload `T`, `&AnyEvent`, or nothing |
/// | several, or `...` | `&AnyEvent` (or `Arc<AnyEvent>` in an `async fn`), or nothing |
///
/// It returns `()`, a value of any type, or `Result<T, E>` with
/// `E: Into<anyhow::Error>` under any name (`anyhow::Result<T>`, an alias): the
/// declared type decides, as for runtime subscription. `Ok` values go to its
/// `#[on_success]` callback, errors and panics to its `#[on_failure]` callback.
/// Its id, for `EventLinker::handler` and workers, is `module::path::function`,
/// and names one handler per linker.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use pyventus::{AnyEvent, Event, EventEmitter, EventLinker, on};
///
/// #[derive(Debug, Clone, Event)]
/// struct OrderCreated {
///     order_id: u64,
/// }
///
/// #[on(OrderCreated)]
/// fn audit(e: &OrderCreated) {
///     println!("order {} created", e.order_id);
/// }
///
/// #[on(OrderCreated)]
/// async fn send_email(e: &OrderCreated) -> anyhow::Result<u64> {
///     Ok(e.order_id)
/// }
///
/// #[on("GreetEvent")]
/// fn greet(name: &String) {
///     println!("Hello, {name}!");
/// }
///
/// #[on(...)]
/// fn log_everything(e: &AnyEvent) {
///     println!("[log] {e:?}");
/// }
///
/// // Still a plain function:
/// audit(&OrderCreated { order_id: 1 });
///
/// let emitter = EventEmitter::builder().linker(EventLinker::global()).build();
/// emitter.emit(OrderCreated { order_id: 2 })?;
/// emitter.emit_named("GreetEvent", "Pyventus".to_string())?;
/// # Ok::<(), pyventus::Error>(())
/// ```
#[proc_macro_attribute]
pub fn on(args: TokenStream, item: TokenStream) -> TokenStream {
    on::expand(on::Kind::On, args.into(), item.into()).into()
}

/// Like [`macro@on`], for a one-time subscription: the first emission of one of
/// its events calls the function, which is then unlinked from all of them,
/// however many threads emit at once. Pyventus's `@EventLinker.once(...)`.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use pyventus::{Event, EventEmitter, EventLinker, once};
///
/// #[derive(Debug, Event)]
/// struct AppStarted;
///
/// #[once(AppStarted)]
/// fn warm_caches() {
///     println!("warming caches, once");
/// }
///
/// let emitter = EventEmitter::builder().linker(EventLinker::global()).build();
/// emitter.emit(AppStarted)?; // prints
/// emitter.emit(AppStarted)?; // does not
/// # Ok::<(), pyventus::Error>(())
/// ```
#[proc_macro_attribute]
pub fn once(args: TokenStream, item: TokenStream) -> TokenStream {
    on::expand(on::Kind::Once, args.into(), item.into()).into()
}

/// A success callback: `#[on_success(handler)]` gets the `Ok` value of the
/// handler `handler` each time it succeeds; a bare `#[on_success]` (or
/// `#[on_success(linker = L)]`) is the linker's default success callback, for
/// every handler without one, taking `&dyn Any`.
///
/// The callback takes the value by value (checked against the handler's `Ok`
/// type at compile time: `T` for a handler returning `Result<T, E>` under any
/// name, the returned type itself otherwise), or nothing. It runs synchronously.
/// It attaches to the handler it names, in that handler's linker.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use pyventus::{Event, EventEmitter, EventLinker, on, on_success};
///
/// #[derive(Debug, Event)]
/// struct SignUp {
///     email: String,
/// }
///
/// #[derive(Debug)]
/// struct Receipt(String);
///
/// #[on(SignUp)]
/// fn send_welcome(e: &SignUp) -> anyhow::Result<Receipt> {
///     Ok(Receipt(format!("welcome mail to {}", e.email)))
/// }
///
/// #[on_success(send_welcome)]
/// fn welcome_sent(receipt: Receipt) {
///     println!("sent: {}", receipt.0);
/// }
///
/// let emitter = EventEmitter::builder().linker(EventLinker::global()).build();
/// emitter.emit(SignUp { email: "user@example.com".into() })?;
/// # Ok::<(), pyventus::Error>(())
/// ```
#[proc_macro_attribute]
pub fn on_success(args: TokenStream, item: TokenStream) -> TokenStream {
    on_outcome::expand(signature::Outcome::Success, args.into(), item.into()).into()
}

/// A failure callback: `#[on_failure(handler)]` gets the error (or panic) of
/// the handler `handler` each time it fails; a bare `#[on_failure]` (or
/// `#[on_failure(linker = L)]`) is the linker's default failure callback, for
/// every handler without one.
///
/// The callback takes `&anyhow::Error`, or nothing. Every failure is also
/// logged at error level, callback or not.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use pyventus::{Event, EventEmitter, EventLinker, on, on_failure};
///
/// #[derive(Debug, Event)]
/// struct PasswordResetRequested {
///     email: String,
/// }
///
/// #[on(PasswordResetRequested)]
/// async fn send_reset_email(e: &PasswordResetRequested) -> anyhow::Result<()> {
///     anyhow::bail!("SMTP service not available for {}", e.email)
/// }
///
/// #[on_failure(send_reset_email)]
/// fn reset_email_failed(err: &anyhow::Error) {
///     println!("could not send the reset email: {err}");
/// }
///
/// let emitter = EventEmitter::builder().linker(EventLinker::global()).build();
/// emitter.emit(PasswordResetRequested { email: "user@example.com".into() })?;
/// # Ok::<(), pyventus::Error>(())
/// ```
#[proc_macro_attribute]
pub fn on_failure(args: TokenStream, item: TokenStream) -> TokenStream {
    on_outcome::expand(signature::Outcome::Failure, args.into(), item.into()).into()
}

/// Declares the responder of a request (see `#[derive(Request)]`), linked at
/// link time like `#[on]`: a `fn` taking `&R`, or an `async fn` taking
/// `Arc<R>`, that returns `Result<R::Response, R::Error>`. A request has one
/// responder (unless declared `many`): a second is reported by
/// `pyventus::verify()` and refused when the linker is built. Options:
/// `linker = Path`, `crate = path`.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use pyventus::{Event, EventEmitter, Request, respond};
/// use std::time::Duration;
///
/// #[derive(Debug, Event, Request)]
/// #[request(response = u64, error = String)]
/// struct GetQuote {
///     symbol: String,
/// }
///
/// #[respond]
/// fn quote(q: &GetQuote) -> Result<u64, String> {
///     match q.symbol.as_str() {
///         "ACME" => Ok(42),
///         other => Err(format!("unknown symbol {other}")),
///     }
/// }
///
/// fn main() {
///     let emitter = EventEmitter::builder().build();
///     // From synchronous code here; `.await` it in async code.
///     let answer = pyventus::runtime::block_on(
///         emitter
///             .request(GetQuote { symbol: "ACME".into() })
///             .timeout(Duration::from_secs(1)),
///     );
///     assert_eq!(answer, Ok(42));
///     assert_eq!(quote(&GetQuote { symbol: "ACME".into() }), Ok(42)); // still a plain function
/// }
/// ```
#[proc_macro_attribute]
pub fn respond(args: TokenStream, item: TokenStream) -> TokenStream {
    respond::expand(args.into(), item.into()).into()
}
