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
use lapin::types::{AMQPValue, FieldTable};
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

/// Emissions published one at a time (each waits for its confirm), per round.
const ONE_AT_A_TIME: u64 = 300;
/// Emissions published pipelined, and handled end to end, per round.
const N: u64 = 10_000;
/// Rounds of each measurement; the median is reported.
const ROUNDS: usize = 7;
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

    // Every variant runs ROUNDS times, interleaved with its floor and in a
    // rotating order, and the medians are compared: the machine is shared and
    // noisy, and the broker's commit latency drifts.
    let [floor, emit, publish] =
        one_at_a_time(&raw, &emitter, &service, &envelope, &url, &queue).await?;
    rows.push(("publish with confirms, one at a time (`emit`)", floor, emit));
    rows.push((
        "publish with confirms, one at a time (`publish`, async)",
        floor,
        publish,
    ));

    let mut cpu_rows = Vec::new();
    let (mut rates, mut cpu) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..ROUNDS {
        for variant in rotated(2, round) {
            let (start, ticks) = (Instant::now(), cpu_ticks());
            if variant == 0 {
                raw.publish_pipelined(N).await?;
            } else {
                publish_pipelined(&service, &envelope, N).await?;
            }
            rates[variant].push(per_second(N, start.elapsed()));
            cpu[variant].push(cpu_micros_per_message(ticks));
            drain(&url, &queue).await?;
        }
    }
    let what = "publish with confirms, 64 in flight (`publish`)";
    let [floor, ours] = rates.map(median);
    rows.push((what, floor, ours));
    let [floor, ours] = cpu.map(median);
    cpu_rows.push((what, floor, ours));

    for (workers, blocking, what) in [
        (1, true, "end to end, 1 worker (prefetch 64)"),
        (1, false, "end to end, 1 worker, `blocking(false)`"),
        (2, true, "end to end, 2 workers (prefetch 64 each)"),
    ] {
        let (mut rates, mut cpu) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        for round in 0..ROUNDS {
            for variant in rotated(2, round) {
                publish_pipelined(&service, &envelope, N).await?;
                let ticks = cpu_ticks();
                let rate = if variant == 0 {
                    let start = Instant::now();
                    raw_consume(&url, &rabbit, workers, N).await?;
                    per_second(N, start.elapsed())
                } else {
                    pyventus_consume(&url, &queue, workers, blocking).await?
                };
                rates[variant].push(rate);
                cpu[variant].push(cpu_micros_per_message(ticks));
                drain(&url, &queue).await?; // what a consumer held and returned
            }
        }
        let [floor, ours] = rates.map(median);
        rows.push((what, floor, ours));
        let [floor, ours] = cpu.map(median);
        cpu_rows.push((what, floor, ours));
    }

    println!("| what | raw lapin (floor) | pyventus | floor / pyventus |");
    println!("| --- | ---: | ---: | ---: |");
    for (what, floor, ours) in rows {
        println!(
            "| {what} | {floor:.0} /s | {ours:.0} /s | {:.2}× |",
            floor / ours
        );
    }

    println!();
    println!("| what | CPU per message, raw lapin | pyventus | difference |");
    println!("| --- | ---: | ---: | ---: |");
    for (what, floor, ours) in cpu_rows {
        println!(
            "| {what} | {floor:.1} µs | {ours:.1} µs | {:+.1} µs |",
            ours - floor
        );
    }

    delete(&url, &rabbit).await
}

/// This process's CPU time so far (user and system, every thread), in clock
/// ticks, from `/proc/self/stat`; 0 where there is none.
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum()
}

/// CPU microseconds per message since `ticks`, at Linux's 100 ticks a second.
#[allow(clippy::cast_precision_loss)]
fn cpu_micros_per_message(ticks: u64) -> f64 {
    (cpu_ticks().saturating_sub(ticks) * 10_000) as f64 / N as f64
}

/// pyventus workers handling `N` messages: the rate.
async fn pyventus_consume(url: &str, queue: &str, workers: usize, blocking: bool) -> Result<f64> {
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
            .blocking(blocking)
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

/// Publishes one at a time with confirms: the raw floor, `emit`, and
/// `publish`; their median rates.
async fn one_at_a_time(
    raw: &RawPublisher,
    emitter: &EventEmitter,
    service: &AmqpProcessingService,
    envelope: &Envelope,
    url: &str,
    queue: &str,
) -> Result<[f64; 3]> {
    let mut rates = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for variant in rotated(3, round) {
            let start = Instant::now();
            for n in 0..ONE_AT_A_TIME {
                match variant {
                    0 => raw.publish().await?,
                    1 => emitter.emit(Tick { n: n + 1 })?,
                    _ => service.publish(envelope).await?,
                }
            }
            rates[variant].push(per_second(ONE_AT_A_TIME, start.elapsed()));
        }
        drain(url, queue).await?;
    }
    Ok(rates.map(median))
}

/// `0..n`, rotated by `round`.
fn rotated(n: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n)
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
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
    let _ = connection.close(200, "OK".into()).await;
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
        // The same message as pyventus's envelope: body, properties, headers.
        let mut headers = FieldTable::default();
        headers.insert("x-pyventus-v".into(), AMQPValue::LongUInt(1));
        headers.insert(
            "x-pyventus-emitted-at".into(),
            AMQPValue::LongLongInt(1_700_000_000_000),
        );
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2)
            .with_message_id("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into())
            .with_type("Tick".into())
            .with_timestamp(1_700_000_000)
            .with_app_id("pyventus".into())
            .with_headers(headers);
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
/// acknowledging every message on a task of its own (no handler), until `count`
/// messages are acknowledged.
async fn raw_consume(url: &str, queue: &str, consumers: usize, count: u64) -> Result<()> {
    let handled = Arc::new(AtomicU64::new(0));
    let mut running = Vec::new();
    let mut connections = Vec::new();
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
            while let Some(Ok(delivery)) = consumer.next().await {
                // A task per delivery, as any worker with concurrency does.
                let handled = handled.clone();
                tokio::spawn(async move {
                    if delivery.ack(BasicAckOptions::default()).await.is_ok() {
                        handled.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }));
        connections.push(connection);
    }
    // Watched the way the pyventus runs are.
    while handled.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for run in running {
        run.abort();
    }
    for connection in connections {
        // Best effort: acknowledgements may still be on their way.
        let _ = connection.close(200, "OK".into()).await;
    }
    Ok(())
}
