//! Throughput over RabbitMQ, run by `benches/amqp/run.sh`: pyventus beside a raw
//! lapin publisher and consumer doing the same work (persistent messages on the
//! same quorum queue, publisher confirms, one ack per message after its
//! handler): the floor. Measures only when given `--measure` (a plain
//! `cargo bench` skips it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pyventus::amqp::{AmqpProcessingService, Envelope, Worker, url_from_env};
use pyventus::{Event, EventEmitter, Linker, on};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Tick {
    n: u64,
}

#[derive(Linker)]
struct Bench;

static HANDLED: AtomicU64 = AtomicU64::new(0);

#[on(Tick, linker = Bench)]
fn count(t: &Tick) {
    HANDLED.fetch_add(t.n.min(1), Ordering::Relaxed);
}

/// Emissions published one at a time (each waits for its confirm).
const ONE_AT_A_TIME: u64 = 2_000;
/// Emissions published pipelined, and handled end to end.
const N: u64 = 20_000;
/// Publishes in flight when pipelined; prefetch of each consumer.
const IN_FLIGHT: usize = 64;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--measure") {
        return Ok(());
    }
    let url = url_from_env();
    let queue = format!("bench-{}", std::process::id());
    let rabbit = format!("pyventus.{queue}");
    let service = AmqpProcessingService::builder(&url)
        .queue(&queue)
        .connect()
        .await?;
    let emitter = EventEmitter::builder()
        .processor(service.clone())
        .linker(Bench::linker())
        .build();
    let raw = RawPublisher::connect(&url, &rabbit).await?;
    let envelope = Envelope::new("Tick", r#"{"n":1}"#);
    let mut rows = Vec::new();

    // Each pair runs twice, alternating, and keeps its best: the machine is noisy.
    let (mut floor, mut ours) = (f64::MAX, f64::MAX);
    for _ in 0..2 {
        let start = Instant::now();
        for _ in 0..ONE_AT_A_TIME {
            raw.publish().await?;
        }
        floor = floor.min(per_second(ONE_AT_A_TIME, start.elapsed()));
        let start = Instant::now();
        for n in 0..ONE_AT_A_TIME {
            emitter.emit(Tick { n: n + 1 })?;
        }
        ours = ours.min(per_second(ONE_AT_A_TIME, start.elapsed()));
    }
    drain(&url, &queue).await?;
    rows.push(("publish with confirms, one at a time (`emit`)", floor, ours));

    let (mut floor, mut ours) = (f64::MAX, f64::MAX);
    for _ in 0..2 {
        let start = Instant::now();
        raw.publish_pipelined(N).await?;
        floor = floor.min(per_second(N, start.elapsed()));
        let start = Instant::now();
        publish_pipelined(&service, &envelope, N).await?;
        ours = ours.min(per_second(N, start.elapsed()));
    }
    drain(&url, &queue).await?;
    rows.push((
        "publish with confirms, 64 in flight (`publish`)",
        floor,
        ours,
    ));

    for workers in [1_usize, 2] {
        publish_pipelined(&service, &envelope, N).await?;
        let start = Instant::now();
        raw_consume(&url, &rabbit, workers, N).await?;
        let floor = per_second(N, start.elapsed());
        drain(&url, &queue).await?; // what the other raw consumer held and returned

        publish_pipelined(&service, &envelope, N).await?;
        let ours = pyventus_consume(&url, &queue, workers).await?;
        let what = if workers == 1 {
            "end to end, 1 worker (prefetch 64)"
        } else {
            "end to end, 2 workers (prefetch 64 each)"
        };
        rows.push((what, floor, ours));
    }

    println!("| what | raw lapin (floor) | pyventus | floor / pyventus |");
    println!("| --- | ---: | ---: | ---: |");
    for (what, floor, ours) in rows {
        println!(
            "| {what} | {floor:.0} /s | {ours:.0} /s | {:.2}× |",
            floor / ours
        );
    }

    delete(&url, &rabbit).await
}

/// pyventus workers handling `N` messages: the rate.
async fn pyventus_consume(url: &str, queue: &str, workers: usize) -> Result<f64> {
    let goal = HANDLED.load(Ordering::Relaxed) + N;
    let start = Instant::now();
    let mut running = Vec::new();
    let mut handles = Vec::new();
    for i in 0..workers {
        let worker = Worker::builder(url)
            .queue(queue)
            .linker(Bench::linker())
            .consumer(format!("bench-{}-{workers}-{i}", std::process::id()))
            .concurrency(IN_FLIGHT)
            .connect()
            .await?;
        handles.push(worker.clone());
        running.push(tokio::spawn(async move { worker.run().await }));
    }
    while HANDLED.load(Ordering::Relaxed) < goal {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = per_second(N, start.elapsed());
    for worker in &handles {
        worker.shutdown();
    }
    for run in running {
        run.await??;
    }
    Ok(rate)
}

/// Deletes the benchmark's queues and exchange.
async fn delete(url: &str, rabbit: &str) -> Result<()> {
    let (connection, channel) = open(url).await?;
    for name in [rabbit.to_owned(), format!("{rabbit}.dead")] {
        channel
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    channel
        .exchange_delete(
            format!("{rabbit}.dlx").as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await?;
    connection.close(200, "OK".into()).await?;
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn open(url: &str) -> Result<(Connection, Channel)> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    Ok((connection, channel))
}

/// pyventus's `publish`, `count` times with up to 64 in flight.
async fn publish_pipelined(
    service: &AmqpProcessingService,
    envelope: &Envelope,
    count: u64,
) -> Result<()> {
    let mut pending = FuturesUnordered::new();
    for _ in 0..count {
        if pending.len() >= IN_FLIGHT {
            pending.next().await.expect("pending")?;
        }
        pending.push(service.publish(envelope));
    }
    while let Some(result) = pending.next().await {
        result?;
    }
    Ok(())
}

/// Purges the queue, between benchmarks.
async fn drain(url: &str, queue: &str) -> Result<()> {
    let (connection, channel) = open(url).await?;
    channel
        .queue_purge(
            format!("pyventus.{queue}").as_str().into(),
            lapin::options::QueuePurgeOptions::default(),
        )
        .await?;
    connection.close(200, "OK".into()).await?;
    Ok(())
}

/// The floor's publisher: the same persistent JSON message, mandatory, on a
/// channel in confirm mode.
struct RawPublisher {
    _connection: Connection,
    channel: Channel,
    queue: String,
}

impl RawPublisher {
    async fn connect(url: &str, queue: &str) -> Result<Self> {
        let (connection, channel) = open(url).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(RawPublisher {
            _connection: connection,
            channel,
            queue: queue.to_owned(),
        })
    }

    async fn publish(&self) -> Result<()> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                br#"{"n":1}"#,
                properties,
            )
            .await?
            .await?;
        assert!(confirm.is_ack());
        Ok(())
    }

    async fn publish_pipelined(&self, count: u64) -> Result<()> {
        let mut pending = FuturesUnordered::new();
        for _ in 0..count {
            if pending.len() >= IN_FLIGHT {
                pending.next().await.expect("pending")?;
            }
            pending.push(self.publish());
        }
        while let Some(result) = pending.next().await {
            result?;
        }
        Ok(())
    }
}

/// The floor's consumers: `consumers` connections with prefetch 64, each
/// running a trivial handler per message and acknowledging it, until `count`
/// messages are handled.
async fn raw_consume(url: &str, queue: &str, consumers: usize, count: u64) -> Result<()> {
    let handled = Arc::new(AtomicU64::new(0));
    let mut running = Vec::new();
    for i in 0..consumers {
        let (connection, channel) = open(url).await?;
        channel
            .basic_qos(u16::try_from(IN_FLIGHT)?, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                format!("raw-{i}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let handled = handled.clone();
        running.push(tokio::spawn(async move {
            while handled.load(Ordering::Relaxed) < count {
                let next = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await;
                let Ok(Some(Ok(delivery))) = next else {
                    continue;
                };
                handled.fetch_add(1, Ordering::Relaxed);
                delivery.ack(BasicAckOptions::default()).await.expect("ack");
            }
            let _ = connection.close(200, "OK".into()).await;
        }));
    }
    for run in running {
        run.await?;
    }
    Ok(())
}
