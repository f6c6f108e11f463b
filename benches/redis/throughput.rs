//! Throughput over Redis Streams, run by `benches/redis/run.sh`: emissions
//! enqueued per second, and processed end to end by one and two workers (and
//! one running its synchronous handler inline).
//! Each row gives the rate, and the CPU time per entry of this process and of
//! Redis (`INFO cpu`): on a shared machine the rates swing with the load, the
//! CPU per entry much less. Measures only when given `--measure` (a plain
//! `cargo bench` skips it).

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

    let client = redis::Client::open(url.as_str()).map_err(pyventus::redis::Error::from)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(pyventus::redis::Error::from)?;

    // `emit` from sync-style code: one round trip per emission.
    let start = Meter::start(&mut conn).await;
    for n in 0..N {
        emitter.emit(Tick { n: n + 1 })?;
    }
    start
        .report(&mut conn, "enqueue, `emit` one at a time", N)
        .await;

    // `enqueue` with 64 in flight (pipelined on one connection).
    let envelope = Envelope::new("Tick", r#"{"n":1}"#);
    let start = Meter::start(&mut conn).await;
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
    start.report(&mut conn, "enqueue, 64 in flight", N).await;

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
        let start = Meter::start(&mut conn).await;
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
        let what = format!(
            "processed end to end, {workers} worker(s){}",
            if inline { ", sync handlers inline" } else { "" }
        );
        start.report(&mut conn, &what, 2 * N).await;
        for worker in &handles {
            worker.shutdown();
        }
        for run in running {
            run.await.expect("worker task")?;
        }
    }

    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(format!("pyventus:{{{queue}}}:stream"))
        .arg(format!("pyventus:{{{queue}}}:dead"))
        .query_async(&mut conn)
        .await;
    Ok(())
}

/// Wall time, this process's CPU time and Redis's, since a phase started.
struct Meter {
    wall: Instant,
    cpu: Option<Duration>,
    redis: Option<f64>,
}

impl Meter {
    async fn start(conn: &mut redis::aio::MultiplexedConnection) -> Meter {
        Meter {
            redis: redis_cpu(conn).await,
            cpu: process_cpu(),
            wall: Instant::now(),
        }
    }

    /// Prints the phase's row: rate, and CPU microseconds per entry.
    async fn report(self, conn: &mut redis::aio::MultiplexedConnection, what: &str, count: u64) {
        let elapsed = self.wall.elapsed();
        let (cpu, redis) = (process_cpu(), redis_cpu(conn).await);
        #[allow(clippy::cast_precision_loss)]
        let (count, rate) = (count as f64, count as f64 / elapsed.as_secs_f64());
        let per_entry = |seconds: Option<f64>| {
            seconds.map_or_else(|| "?".to_owned(), |s| format!("{:.1} µs", s * 1e6 / count))
        };
        let cpu = self
            .cpu
            .zip(cpu)
            .map(|(before, after)| after.saturating_sub(before).as_secs_f64());
        let redis = self.redis.zip(redis).map(|(before, after)| after - before);
        println!(
            "| {what} | {rate:.0} /s | {} | {} |",
            per_entry(cpu),
            per_entry(redis)
        );
    }
}

/// This process's CPU time (user and system, every thread), where Linux says.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command's name: state, then 10 fields, then utime and stime.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // Linux counts these in USER_HZ, 100 a second.
    Some(Duration::from_millis(ticks * 10))
}

/// Redis's CPU time so far, in seconds (`used_cpu_sys` + `used_cpu_user`).
async fn redis_cpu(conn: &mut redis::aio::MultiplexedConnection) -> Option<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await.ok()?;
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}
