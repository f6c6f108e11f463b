//! The user guide: one page per concept, in the order a newcomer meets them.
//! Every snippet on these pages is compiled and run as a doctest.
//!
//! 1. [`events`]: typed events, named events, the global event.
//! 2. [`handlers`]: `#[on]`, `#[once]`, `#[on_success]`, `#[on_failure]`,
//!    namespaces, and how handler ids are formed.
//! 3. [`linkers`]: the registry, runtime subscription, queries and removal.
//! 4. [`emitters`]: emitting, and the processing services that run emissions.
//! 5. [`workflow`]: success and failure callbacks, panics, logging.
//! 6. [`requests`]: requests and their responders, `request` and `collect`.
//! 7. [`lifecycle`]: what happens to an emission on each processing service,
//!    what waiting and shutting down guarantee, and what is reported.
//! 8. [`resilience`]: retries, timeouts, concurrency limits, dead letters
//!    and middleware, and what they mean on each processing service.
//! 9. [`testing`]: asserting what code emits; running handlers in tests.
//! 10. Integrations: [`axum`] (handlers after the response), [`redis`] and
//!     [`amqp`] (worker processes over Redis Streams or RabbitMQ), [`postgres`]
//!     (a transactional outbox and its relays), [`metrics`]
//!     (counters and gauges for Prometheus and the rest), behind their
//!     features; `web_and_worker`: a web process and a worker for the same
//!     events (linkers, targets, state, draining).
//! 11. [`architecture`]: the crates, the path of an emission, the registry,
//!     and writing a backend; [`compile_errors`]: every diagnostic and its fix;
//!     [`benchmarks`]: what it all costs.

// The pages are prose that names products (RabbitMQ, FastAPI, AsyncIO), not
// code items to put in backticks.
#![allow(clippy::doc_markdown)]

#[doc = include_str!("../docs/events.md")]
pub mod events {}

#[doc = include_str!("../docs/handlers.md")]
pub mod handlers {}

#[doc = include_str!("../docs/linkers.md")]
pub mod linkers {}

#[doc = include_str!("../docs/emitters.md")]
pub mod emitters {}

#[doc = include_str!("../docs/workflow.md")]
pub mod workflow {}

#[doc = include_str!("../docs/requests.md")]
pub mod requests {}

#[doc = include_str!("../docs/lifecycle.md")]
pub mod lifecycle {}

#[doc = include_str!("../docs/resilience.md")]
pub mod resilience {}

#[doc = include_str!("../docs/testing.md")]
pub mod testing {}

// The integration pages' snippets need axum, serde, tracing-subscriber and the
// `shop` example crate, which the facade's build does not carry: they are
// doctested in the test package (tests/guide.rs), not here.
#[cfg(all(feature = "axum", not(doctest)))]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[doc = include_str!("../docs/axum.md")]
pub mod axum {}

#[cfg(all(feature = "redis", not(doctest)))]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc = include_str!("../docs/redis.md")]
pub mod redis {}

#[cfg(all(feature = "postgres", not(doctest)))]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[doc = include_str!("../docs/postgres.md")]
pub mod postgres {}

#[cfg(all(feature = "amqp", not(doctest)))]
#[cfg_attr(docsrs, doc(cfg(feature = "amqp")))]
#[doc = include_str!("../docs/amqp.md")]
pub mod amqp {}

// Its snippet reads metrics back with `metrics-util`, a dev-dependency of the
// test package, which doctests it (tests/guide.rs).
#[cfg(all(feature = "metrics", not(doctest)))]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc = include_str!("../docs/metrics.md")]
pub mod metrics {}

// Its snippet derives serde's traits, a dev-dependency of the test package,
// which doctests it (tests/guide.rs).
#[cfg(all(feature = "redis", not(doctest)))]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc = include_str!("../docs/web_and_worker.md")]
pub mod web_and_worker {}

#[doc = include_str!("../docs/architecture.md")]
pub mod architecture {}

/// Every mistake the macros report, as the compiler prints it, and its fix.
///
/// The page's snippets are compiler output, not programs, so they are not
/// doctests here; `tests/ui/` checks each one.
#[doc = include_str!("../docs/compile-errors.md")]
pub mod compile_errors {}

#[doc = include_str!("../docs/benchmarks.md")]
pub mod benchmarks {}
