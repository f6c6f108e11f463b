//! Helpers of the RabbitMQ tests: the broker to test against, fresh queues and
//! their cleanup, raw publishing, and waiting with a bound.

use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pyventus::amqp::Worker;

/// The RabbitMQ to test against, or `None` (and why) when it is not reachable
/// and not required.
pub async fn amqp_url() -> Option<String> {
    let url = pyventus::amqp::url_from_env();
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    match reachable {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "OK".into()).await;
            Some(url)
        }
        _ if std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!(
                "RabbitMQ is required (PYVENTUS_REQUIRE_SERVICES=1) but not reachable at {url}; set PYVENTUS_AMQP_URL"
            )
        }
        _ => {
            super::skip(&format!(
                "no RabbitMQ reachable at {url} (set PYVENTUS_AMQP_URL to run this test)"
            ));
            None
        }
    }
}

/// A queue name no other test uses.
pub fn fresh_queue(name: &str) -> String {
    format!("test-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// The RabbitMQ queue of a pyventus queue.
pub fn queue_of(queue: &str) -> String {
    format!("pyventus.{queue}")
}

/// The dead-letter queue of a pyventus queue.
pub fn dead_of(queue: &str) -> String {
    format!("pyventus.{queue}.dead")
}

/// A plain connection and a channel in confirm mode, for what the tests do
/// behind pyventus's back.
pub async fn raw(url: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (connection, channel)
}

/// Publishes a raw message to a pyventus queue and waits for its confirm.
pub async fn publish_raw(channel: &Channel, queue: &str, body: &[u8], properties: BasicProperties) {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue_of(queue).as_str().into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "the broker took the raw message");
}

/// How many messages are ready in a RabbitMQ queue.
pub async fn ready(url: &str, name: &str) -> u32 {
    let (connection, channel) = raw(url).await;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let count = channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await
        .unwrap()
        .message_count();
    let _ = connection.close(200, "OK".into()).await;
    count
}

/// Takes (and acknowledges) every message of a RabbitMQ queue: their bodies.
pub async fn drain(url: &str, name: &str) -> Vec<Vec<u8>> {
    let (connection, channel) = raw(url).await;
    let mut bodies = Vec::new();
    while let Some(message) = channel
        .basic_get(name.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        bodies.push(message.delivery.data);
    }
    let _ = connection.close(200, "OK".into()).await;
    bodies
}

/// Deletes a pyventus queue's broker objects.
pub async fn cleanup(url: &str, queue: &str) {
    let (connection, channel) = raw(url).await;
    for name in [queue_of(queue), dead_of(queue)] {
        let _ = channel
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(
            format!("pyventus.{queue}.dlx").as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await;
    let _ = connection.close(200, "OK".into()).await;
}

/// Waits until `done` holds, or fails after `limit`.
pub async fn until(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `worker` on a task of its own.
pub fn spawn_run(worker: &Worker) -> tokio::task::JoinHandle<Result<(), pyventus::amqp::Error>> {
    let worker = worker.clone();
    tokio::spawn(async move { worker.run().await })
}

/// Stops a worker and waits for `run` to return, within seconds.
pub async fn stop(
    worker: &Worker,
    running: tokio::task::JoinHandle<Result<(), pyventus::amqp::Error>>,
) {
    worker.shutdown();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the worker stops within seconds of a shutdown")
        .unwrap()
        .unwrap();
}
