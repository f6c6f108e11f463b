//! `emit_async`: emitting from async code without blocking the thread on a
//! processing service's I/O, with the same targeting of the linker's handlers
//! and the same accounting as `emit`; and a worker that refuses to start while
//! a handler of its linker takes a state nobody provided.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyventus::{Event, EventEmitter, EventLinker, Linker, State, TokioProcessingService, on};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Shipped {
    order: u64,
}

#[derive(Linker)]
struct Shipping;

#[on(Shipped, linker = Shipping)]
fn notify(_: &Shipped) {}

#[tokio::test(flavor = "current_thread")]
async fn emit_async_on_a_local_service_runs_the_handlers_as_emit_does() {
    let linker = EventLinker::new();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    linker
        .on::<Shipped>()
        .subscribe_async(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    let tokio = TokioProcessingService::default();
    let emitter = EventEmitter::builder()
        .processor(tokio.clone())
        .linker(linker)
        .build();
    emitter.emit_async(Shipped { order: 1 }).await.unwrap();
    emitter.emit_named_async("Unrelated", ()).await.unwrap();
    tokio.wait_for_tasks().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::common::redis::{cleanup, connection, fresh_queue, redis_url, service};

    /// On a current-thread runtime, where `emit` would have to leave the
    /// runtime's only thread to block on Redis, `emit_async` awaits it: the
    /// entry is there, targeting the linker's handler, and counted.
    #[tokio::test(flavor = "current_thread")]
    async fn emit_async_enqueues_on_redis_with_the_linkers_targets_and_counts_it() {
        let Some(url) = redis_url().await else { return };
        let queue = fresh_queue("emit-async");
        let service = service(&url, &queue).await;
        let emitter = EventEmitter::builder()
            .processor(service.clone())
            .linker(Shipping::linker())
            .build();
        emitter.emit_async(Shipped { order: 7 }).await.unwrap();
        assert_eq!(service.stats().enqueued, 1);
        let mut conn = connection(&url).await;
        let entries: ::redis::streams::StreamRangeReply = ::redis::cmd("XRANGE")
            .arg(crate::common::redis::stream_key(&queue))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(entries.ids.len(), 1);
        let handlers: String = entries.ids[0].get("handlers").expect("targeted handlers");
        assert_eq!(handlers, "emit_async::notify");
        cleanup(&url, &queue).await;
    }

    #[derive(Linker)]
    struct NeedsMailer;

    struct Mailer;

    #[on(Shipped, linker = NeedsMailer)]
    fn mail(_: &Shipped, _mailer: State<Mailer>) {}

    #[tokio::test]
    async fn a_worker_refuses_to_start_until_every_state_its_handlers_take_is_provided() {
        let Some(url) = redis_url().await else { return };
        let queue = fresh_queue("state-at-startup");
        let refused = pyventus::redis::Worker::builder(&url)
            .queue(&queue)
            .linker(NeedsMailer::linker())
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(
                &refused,
                pyventus::redis::Error::Pyventus(pyventus::Error::MissingState { .. })
            ),
            "{refused}"
        );
        let worker = pyventus::redis::Worker::builder(&url)
            .queue(&queue)
            .linker(NeedsMailer::linker())
            .state(Mailer)
            .connect()
            .await
            .unwrap();
        drop(worker);
        cleanup(&url, &queue).await;
    }
}

#[cfg(feature = "amqp")]
mod amqp {
    use super::*;
    use crate::common::amqp::{amqp_url, cleanup, drain, fresh_queue, queue_of};

    #[tokio::test(flavor = "current_thread")]
    async fn emit_async_publishes_on_rabbitmq_with_the_linkers_targets() {
        let Some(url) = amqp_url().await else { return };
        let queue = fresh_queue("emit-async");
        let service = pyventus::amqp::AmqpProcessingService::builder(&url)
            .queue(&queue)
            .connect()
            .await
            .unwrap();
        let emitter = EventEmitter::builder()
            .processor(service)
            .linker(Shipping::linker())
            .build();
        emitter.emit_async(Shipped { order: 7 }).await.unwrap();
        let bodies = drain(&url, &queue_of(&queue)).await;
        assert_eq!(bodies.len(), 1, "published once");
        cleanup(&url, &queue).await;
    }
}
