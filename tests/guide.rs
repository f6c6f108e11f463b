//! The guide's pages on the integrations, doctested in this package: their
//! snippets use axum, serde, tracing-subscriber, OpenTelemetry and the `shop`
//! example crate, which are dev-dependencies here and not of the facade (whose
//! examples are to build as little as a user's crate). The facade still
//! publishes these pages as `pyventus::guide::{axum, redis, amqp, postgres, metrics}`; the
//! other pages are doctested there.

#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../docs/axum.md")]
mod axum {}

#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../docs/redis.md")]
mod redis {}

#[cfg(all(doctest, feature = "amqp"))]
#[doc = include_str!("../docs/amqp.md")]
mod amqp {}

#[cfg(all(doctest, feature = "postgres"))]
#[doc = include_str!("../docs/postgres.md")]
mod postgres {}

#[cfg(all(doctest, feature = "metrics"))]
#[doc = include_str!("../docs/metrics.md")]
mod metrics {}

#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../docs/web_and_worker.md")]
mod web_and_worker {}
