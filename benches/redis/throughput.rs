//! Throughput over Redis Streams, run by `benches/redis/run.sh`: emissions
//! enqueued per second, and processed end to end by one and two workers (and
//! one running its synchronous handler inline).
//! Measures only when given `--measure` (a plain `cargo bench` skips it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyventus::redis::{Envelope, RedisProcessingService, Worker, url_from_env};
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

const N: u64 = 20_000;

#[tokio::main]
async fn main() -> Result<(), pyventus::Error> {
    if !std::env::args().any(|a| a == "--measure") {
        return Ok(());
    }
    let url = url_from_env();
    let queue = format!("bench-{}", std::process::id());
    let service = RedisProcessingService::builder(&url)
        .queue(&queue)
        .connect()
        .await?;
    let emitter = EventEmitter::builder()
        .processor(service.clone())
        .linker(Bench::linker())
        .build();

    // `emit` from sync-style code: one round trip per emission.
    let start = Instant::now();
    for n in 0..N {
        emitter.emit(Tick { n: n + 1 })?;
    }
    report("enqueue, `emit` one at a time", N, start.elapsed());

    // `enqueue` with 64 in flight (pipelined on one connection).
    let envelope = Envelope::new("Tick", r#"{"n":1}"#);
    let start = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for _ in 0..N {
        if pending.len() >= 64 {
            futures::StreamExt::next(&mut pending).await.unwrap()?;
        }
        pending.push(service.enqueue(&envelope));
    }
    while let Some(result) = futures::StreamExt::next(&mut pending).await {
        result?;
    }
    report("enqueue, 64 in flight", N, start.elapsed());

    // Each run drains 2 N entries: the first, those the two phases above
    // enqueued; the others, a refill.
    for (run, (workers, inline)) in [(1_usize, false), (2, false), (1, true)]
        .into_iter()
        .enumerate()
    {
        if run > 0 {
            let mut pending = futures::stream::FuturesUnordered::new();
            for _ in 0..2 * N {
                if pending.len() >= 64 {
                    futures::StreamExt::next(&mut pending).await.unwrap()?;
                }
                pending.push(service.enqueue(&envelope));
            }
            while let Some(result) = futures::StreamExt::next(&mut pending).await {
                result?;
            }
        }
        let goal = HANDLED.load(Ordering::Relaxed) + 2 * N;
        let start = Instant::now();
        let mut running = Vec::new();
        let mut handles = Vec::new();
        for i in 0..workers {
            let worker = Worker::builder(&url)
                .queue(&queue)
                .linker(Bench::linker())
                .consumer(format!("bench-{run}-{i}"))
                .concurrency(64)
                .sync_handlers_inline(inline)
                .block(Duration::from_millis(100))
                .connect()
                .await?;
            handles.push(worker.clone());
            running.push(tokio::spawn(async move { worker.run().await }));
        }
        while HANDLED.load(Ordering::Relaxed) < goal {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = start.elapsed();
        for worker in &handles {
            worker.shutdown();
        }
        for run in running {
            run.await.expect("worker task")?;
        }
        let inline = if inline { ", sync handlers inline" } else { "" };
        report(
            &format!("processed end to end, {workers} worker(s){inline}"),
            2 * N,
            elapsed,
        );
    }

    let client = redis::Client::open(url.as_str()).map_err(pyventus::redis::Error::from)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(pyventus::redis::Error::from)?;
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(format!("pyventus:{{{queue}}}:stream"))
        .arg(format!("pyventus:{{{queue}}}:dead"))
        .query_async(&mut conn)
        .await;
    Ok(())
}

fn report(what: &str, count: u64, elapsed: Duration) {
    #[allow(clippy::cast_precision_loss)]
    let rate = count as f64 / elapsed.as_secs_f64();
    println!("| {what} | {rate:.0} /s |");
}
