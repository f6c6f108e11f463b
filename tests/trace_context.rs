//! Traces that cross a process (feature `opentelemetry`): the span that emits
//! an event is the parent of the worker's delivery span, across a real Redis
//! (`PYVENTUS_REDIS_URL`) and a real RabbitMQ (`PYVENTUS_AMQP_URL`). Spans are
//! exported to an in-memory exporter through a `tracing-opentelemetry` layer.
//! Without a broker, its tests say so and pass, unless
//! `PYVENTUS_REQUIRE_SERVICES=1` (CI) makes a missing broker a failure.
#![cfg(all(feature = "opentelemetry", any(feature = "redis", feature = "amqp")))]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use pyventus::{Event, EventEmitter, Linker, ProcessingService, on};
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct OrderPaid {
    order: u64,
}

#[derive(Linker)]
struct Traced;

#[on(OrderPaid, linker = Traced)]
fn ship(_paid: &OrderPaid) {}

/// The exporter every span of this test binary ends in: one global
/// subscriber (the workers' spans are made on the runtime's threads), a
/// `tracing-opentelemetry` layer on a registry, exporting as each span ends.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("pyventus-tests")));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber in this test binary");
        exporter
    })
}

/// Emits one event through `processor` inside a `checkout` span: that span's
/// context.
fn emit_in_a_span(processor: impl ProcessingService, order: u64) -> SpanContext {
    exporter();
    let emitter = emitter(processor);
    let checkout = tracing::info_span!("checkout", order);
    let sent = checkout.context().span().span_context().clone();
    assert!(sent.is_valid(), "the emitting span is traced");
    checkout.in_scope(|| emitter.emit(OrderPaid { order }).unwrap());
    sent
}

fn emitter(processor: impl ProcessingService) -> EventEmitter {
    EventEmitter::builder()
        .processor(processor)
        .linker(Traced::linker())
        .build()
}

/// The delivery span of `queue`, once it has ended (it ends after its message
/// is settled), or a failure after a few seconds.
async fn delivery_span(queue: &str) -> SpanData {
    let start = Instant::now();
    loop {
        let finished = exporter().get_finished_spans().unwrap();
        let found = finished.into_iter().find(|span| {
            span.name == "pyventus.delivery"
                && span
                    .attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "queue" && kv.value.as_str() == queue)
        });
        if let Some(span) = found {
            return span;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no delivery span was exported for queue {queue}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Says what a delivery span's parent should be.
fn assert_child_of(delivery: &SpanData, parent: &SpanContext) {
    assert_eq!(
        delivery.span_context.trace_id(),
        parent.trace_id(),
        "the delivery continues the emitter's trace"
    );
    assert_eq!(
        delivery.parent_span_id,
        parent.span_id(),
        "the delivery span's parent is the span that emitted"
    );
    assert!(
        delivery.parent_span_is_remote,
        "its parent is in another process"
    );
}

/// A W3C `traceparent` made by hand, as another process (or one built
/// without the feature) would have sent it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

#[cfg(feature = "redis")]
mod over_redis {
    use common::redis::{cleanup, fresh_queue, redis_url, service, spawn_run, stop};
    use common::until;
    use pyventus::redis::{Envelope, Worker};

    use super::*;

    async fn run_one(url: &str, queue: &str) {
        let worker = Worker::builder(url)
            .queue(queue)
            .linker(Traced::linker())
            .block(Duration::from_millis(50))
            .connect()
            .await
            .unwrap();
        let running = spawn_run(&worker);
        until(Duration::from_secs(10), "the delivery", async || {
            worker.stats().processed == 1
        })
        .await;
        stop(&worker, running).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_workers_delivery_span_is_a_child_of_the_span_that_emitted() {
        let Some(url) = redis_url().await else { return };
        let queue = fresh_queue("trace");
        let sent = emit_in_a_span(service(&url, &queue).await, 1);
        run_one(&url, &queue).await;
        assert_child_of(&delivery_span(&queue).await, &sent);
        cleanup(&url, &queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_delivery_continues_a_traceparent_written_by_another_emitter() {
        let Some(url) = redis_url().await else { return };
        exporter();
        let queue = fresh_queue("trace-foreign");
        let mut envelope = Envelope::new("OrderPaid", r#"{"order":2}"#);
        envelope.context.insert(
            "traceparent".to_owned(),
            format!("00-{TRACE_ID}-{SPAN_ID}-01"),
        );
        service(&url, &queue)
            .await
            .enqueue(&envelope)
            .await
            .unwrap();
        run_one(&url, &queue).await;
        let delivery = delivery_span(&queue).await;
        assert_eq!(delivery.span_context.trace_id().to_string(), TRACE_ID);
        assert_eq!(delivery.parent_span_id.to_string(), SPAN_ID);
        cleanup(&url, &queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_emission_outside_any_span_starts_a_trace_in_the_worker() {
        let Some(url) = redis_url().await else { return };
        exporter();
        let queue = fresh_queue("trace-none");
        emitter(service(&url, &queue).await)
            .emit(OrderPaid { order: 3 })
            .unwrap();
        run_one(&url, &queue).await;
        let delivery = delivery_span(&queue).await;
        assert_eq!(delivery.parent_span_id, SpanId::INVALID, "a root span");
        cleanup(&url, &queue).await;
    }
}

#[cfg(feature = "amqp")]
mod over_rabbitmq {
    use common::amqp::{amqp_url, cleanup, fresh_queue, spawn_run, stop};
    use common::until;
    use pyventus::amqp::{AmqpProcessingService, Worker};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rabbitmq_workers_delivery_span_is_a_child_of_the_span_that_emitted() {
        let Some(url) = amqp_url().await else { return };
        let queue = fresh_queue("trace");
        let service = AmqpProcessingService::builder(&url)
            .queue(&queue)
            .connect()
            .await
            .unwrap();
        let sent = emit_in_a_span(service, 1);
        let worker = Worker::builder(&url)
            .queue(&queue)
            .linker(Traced::linker())
            .connect()
            .await
            .unwrap();
        let running = spawn_run(&worker);
        until(Duration::from_secs(20), "the delivery", async || {
            worker.stats().processed == 1
        })
        .await;
        stop(&worker, running).await;
        assert_child_of(&delivery_span(&queue).await, &sent);
        cleanup(&url, &queue).await;
    }
}
