//! Throughput over Redis Streams, run by `benches/redis/run.sh`: pyventus
//! beside a hand-written redis-rs producer and consumer doing the same work
//! (the floor), in one run.
//!
//! The floor writes the entries a `RedisProcessingService` writes (the
//! envelope's fields: `v`, `id`, `event`, `payload`, `emitted_at`) on a stream
//! of the same layout, and reads them as a worker does: `XREADGROUP` in
//! batches of up to 64, the same JSON decoded, the same counting function
//! called, and one `XACK` per batch. Each row gives the rate and the CPU time
//! per entry of this process and of Redis (`INFO cpu`), the median of
//! [`ROUNDS`] rounds in which floor and pyventus alternate: on a shared
//! machine the rates swing with the load, the CPU per entry much less.
//! Measures only when given `--measure` (a plain `cargo bench` skips it).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use pyventus::redis::{Envelope, GROUP, RedisProcessingService, Worker, url_from_env};
use pyventus::{Event, EventEmitter, Linker, on};
use redis::Value;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Tick {
    n: u64,
}

#[derive(Linker)]
struct Bench;

static HANDLED: AtomicU64 = AtomicU64::new(0);

/// The work of every delivery, pyventus's handler and the floor's call alike.
#[on(Tick, linker = Bench)]
fn count(t: &Tick) {
    HANDLED.fetch_add(t.n.min(1), Ordering::Relaxed);
}

/// Entries enqueued one at a time per round.
const ONE_AT_A_TIME: u64 = 10_000;
/// Entries enqueued pipelined, and handled end to end, per round.
const N: u64 = 40_000;
/// Rounds of each measurement; the medians are reported.
const ROUNDS: usize = 7;
/// Commands in flight when pipelined; the worker's concurrency and the floor's
/// batch.
const IN_FLIGHT: usize = 64;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--measure") {
        return Ok(());
    }
    let mut bench = Run::connect().await?;
    // `--profile worker|inline|floor|enqueue|floor-enqueue`: only that end-to-end run, on more
    // entries, for a profiler to watch (`perf record`, `valgrind`).
    if let Some(what) = args
        .iter()
        .position(|a| a == "--profile")
        .and_then(|i| args.get(i + 1))
    {
        let sample = match what.as_str() {
            "floor" => bench.floor_end_to_end(1, 5 * N).await?,
            "enqueue" => {
                let service = bench.enqueue_service.clone();
                let envelope = bench.envelope.clone();
                measure(&mut bench.meter, 5 * N, fill(&service, &envelope, 5 * N)).await?
            }
            "floor-enqueue" => {
                let (conn, key) = (bench.conn.clone(), bench.floor_enqueue_key.clone());
                measure(&mut bench.meter, 5 * N, floor_fill(&conn, &key, 5 * N)).await?
            }
            _ => bench.end_to_end(1, what == "inline", 5 * N).await?,
        };
        eprintln!("{what}: {sample:?}");
        bench.clean().await;
        return Ok(());
    }
    let mut table = Table::default();
    for round in 0..ROUNDS {
        eprintln!("round {}/{ROUNDS}", round + 1);
        bench.enqueue_round(&mut table).await?;
        let floor_one = bench.floor_end_to_end(1, N).await?;
        let floor_two = bench.floor_end_to_end(2, N).await?;
        for (workers, inline, floor, what) in [
            (1, false, floor_one, "end to end, 1 worker"),
            (
                1,
                true,
                floor_one,
                "end to end, 1 worker, `sync_handlers_inline(true)`",
            ),
            (2, false, floor_two, "end to end, 2 workers"),
        ] {
            let sample = bench.end_to_end(workers, inline, N).await?;
            table.add(what, floor, sample);
        }
    }
    table.print();
    bench.clean().await;
    Ok(())
}

/// The queues, connections and emitter of a run.
struct Run {
    url: String,
    client: redis::Client,
    /// The floor's commands.
    conn: MultiplexedConnection,
    /// `INFO cpu`, on a connection of its own.
    meter: MultiplexedConnection,
    /// Drained end to end: pyventus's queue, the floor's stream.
    queue: String,
    floor_key: String,
    /// Enqueued to, and trimmed each round: no one reads them.
    enqueue_queue: String,
    floor_enqueue_key: String,
    service: RedisProcessingService,
    enqueue_service: RedisProcessingService,
    emitter: EventEmitter,
    envelope: Envelope,
    runs: usize,
}

impl Run {
    async fn connect() -> Result<Run> {
        let url = url_from_env();
        let pid = std::process::id();
        let (queue, enqueue_queue) = (format!("bench-{pid}"), format!("bench-{pid}-enqueue"));
        let service = RedisProcessingService::builder(&url)
            .queue(&queue)
            .connect()
            .await?;
        let enqueue_service = RedisProcessingService::builder(&url)
            .queue(&enqueue_queue)
            .connect()
            .await?;
        let emitter = EventEmitter::builder()
            .processor(enqueue_service.clone())
            .linker(Bench::linker())
            .build();
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let meter = client.get_multiplexed_async_connection().await?;
        let (floor_key, floor_enqueue_key) = (
            format!("pyventus:{{floor-{pid}}}:stream"),
            format!("pyventus:{{floor-{pid}-enqueue}}:stream"),
        );
        for key in [&floor_key, &floor_enqueue_key] {
            let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
        }
        Ok(Run {
            url,
            client,
            conn,
            meter,
            queue,
            floor_key,
            enqueue_queue,
            floor_enqueue_key,
            service,
            enqueue_service,
            emitter,
            envelope: Envelope::new("Tick", r#"{"n":1}"#),
            runs: 0,
        })
    }

    /// Enqueueing, one at a time and pipelined, floor and pyventus in turn.
    async fn enqueue_round(&mut self, table: &mut Table) -> Result<()> {
        // One at a time: a round trip each, the JSON and the id made each
        // time. From synchronous code, as `emit` is meant to be called: the
        // floor on a blocking connection.
        let (client, key) = (self.client.clone(), self.floor_enqueue_key.clone());
        let floor = measure(&mut self.meter, ONE_AT_A_TIME, async move {
            std::thread::spawn(move || -> Result<()> {
                let mut conn = client.get_connection()?;
                for n in 0..ONE_AT_A_TIME {
                    let _: String = floor_xadd(&key, n + 1)?.query(&mut conn)?;
                }
                Ok(())
            })
            .join()
            .expect("floor thread")
        })
        .await?;
        let emitter = self.emitter.clone();
        let emit = measure(&mut self.meter, ONE_AT_A_TIME, async {
            std::thread::spawn(move || {
                for n in 0..ONE_AT_A_TIME {
                    emitter.emit(Tick { n: n + 1 })?;
                }
                Ok::<_, pyventus::Error>(())
            })
            .join()
            .expect("emitting thread")?;
            Ok(())
        })
        .await?;
        table.add(
            "one at a time, from a thread (floor: blocking `XADD`; pyventus: `emit`)",
            floor,
            emit,
        );
        // From an async task: the floor awaits its `XADD`; `emit` steps out
        // of the runtime for its round trip.
        let mut conn = self.conn.clone();
        let key = &self.floor_enqueue_key;
        let floor = measure(&mut self.meter, ONE_AT_A_TIME, async {
            for n in 0..ONE_AT_A_TIME {
                let _: String = floor_xadd(key, n + 1)?.query_async(&mut conn).await?;
            }
            Ok(())
        })
        .await?;
        let emitter = &self.emitter;
        let emit_in_task = measure(&mut self.meter, ONE_AT_A_TIME, async {
            for n in 0..ONE_AT_A_TIME {
                emitter.emit(Tick { n: n + 1 })?;
            }
            Ok(())
        })
        .await?;
        table.add(
            "one at a time, in an async task (floor: `XADD` awaited; pyventus: `emit`)",
            floor,
            emit_in_task,
        );

        // Pipelined: IN_FLIGHT commands at once on one connection.
        let floor = measure(
            &mut self.meter,
            N,
            floor_fill(&self.conn, &self.floor_enqueue_key, N),
        )
        .await?;
        let enqueue = measure(
            &mut self.meter,
            N,
            fill(&self.enqueue_service, &self.envelope, N),
        )
        .await?;
        table.add(
            "64 in flight on one connection (pyventus: `enqueue`)",
            floor,
            enqueue,
        );
        let trimmed = [
            self.floor_enqueue_key.clone(),
            format!("pyventus:{{{}}}:stream", self.enqueue_queue),
        ];
        for key in trimmed {
            let _: () = redis::cmd("XTRIM")
                .arg(&key)
                .arg("MAXLEN")
                .arg(0)
                .query_async(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    /// The floor's consumers draining `count` entries enqueued just before.
    async fn floor_end_to_end(&mut self, consumers: usize, count: u64) -> Result<Sample> {
        self.runs += 1;
        floor_fill(&self.conn, &self.floor_key, count).await?;
        let goal = HANDLED.load(Ordering::Relaxed) + count;
        let mut running = Vec::new();
        for i in 0..consumers {
            let reader = self.client.get_multiplexed_async_connection().await?;
            let (key, name) = (self.floor_key.clone(), format!("floor-{}-{i}", self.runs));
            running.push(tokio::spawn(floor_consume(reader, key, name, goal)));
        }
        let sample = measure(&mut self.meter, count, until(goal)).await?;
        for consumer in running {
            consumer.await??;
        }
        Ok(sample)
    }

    /// `workers` workers draining `count` entries enqueued just before.
    async fn end_to_end(&mut self, workers: usize, inline: bool, count: u64) -> Result<Sample> {
        self.runs += 1;
        fill(&self.service, &self.envelope, count).await?;
        let goal = HANDLED.load(Ordering::Relaxed) + count;
        let mut handles = Vec::new();
        for i in 0..workers {
            handles.push(
                Worker::builder(&self.url)
                    .queue(&self.queue)
                    .linker(Bench::linker())
                    .consumer(format!("bench-{}-{i}", self.runs))
                    .concurrency(IN_FLIGHT)
                    .sync_handlers_inline(inline)
                    .block(Duration::from_millis(100))
                    .connect()
                    .await?,
            );
        }
        let running = handles
            .iter()
            .map(|worker| {
                let worker = worker.clone();
                tokio::spawn(async move { worker.run().await })
            })
            .collect::<Vec<_>>();
        let sample = measure(&mut self.meter, count, until(goal)).await?;
        for worker in &handles {
            worker.shutdown();
        }
        for run in running {
            run.await??;
        }
        Ok(sample)
    }

    async fn clean(&mut self) {
        let _: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(format!("pyventus:{{{}}}:stream", self.queue))
            .arg(format!("pyventus:{{{}}}:dead", self.queue))
            .arg(format!("pyventus:{{{}}}:stream", self.enqueue_queue))
            .arg(&self.floor_key)
            .arg(&self.floor_enqueue_key)
            .query_async(&mut self.conn)
            .await;
    }
}

/// Enqueues `count` copies of `envelope`, [`IN_FLIGHT`] at a time.
async fn fill(service: &RedisProcessingService, envelope: &Envelope, count: u64) -> Result<()> {
    let mut pending = FuturesUnordered::new();
    for _ in 0..count {
        if pending.len() >= IN_FLIGHT {
            pending.next().await.expect("pending")?;
        }
        pending.push(service.enqueue(envelope));
    }
    while let Some(result) = pending.next().await {
        result?;
    }
    Ok(())
}

/// Resolves once the handlers have counted `goal` entries.
async fn until(goal: u64) -> Result<()> {
    while HANDLED.load(Ordering::Relaxed) < goal {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

// The floor: what a hand-written redis-rs producer and consumer do.

/// `XADD` of one envelope's fields, made as `emit` makes them: the event
/// serialized, a fresh id, the time.
fn floor_xadd(key: &str, n: u64) -> Result<redis::Cmd> {
    let payload = serde_json::to_string(&Tick { n })?;
    let id = uuid::Uuid::new_v4().to_string();
    let at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let mut xadd = redis::cmd("XADD");
    xadd.arg(key)
        .arg("*")
        .arg("v")
        .arg(1)
        .arg("id")
        .arg(id)
        .arg("event")
        .arg("Tick")
        .arg("payload")
        .arg(payload)
        .arg("emitted_at")
        .arg(u64::try_from(at)?);
    Ok(xadd)
}

/// `count` `XADD`s of one envelope's fields, [`IN_FLIGHT`] at a time on one
/// connection (what `RedisProcessingService::enqueue` is measured against).
/// Each command is built from the envelope, as a producer of distinct events
/// builds each of its own.
async fn floor_fill(conn: &MultiplexedConnection, key: &str, count: u64) -> Result<()> {
    let envelope = Envelope::new("Tick", r#"{"n":1}"#);
    let mut pending = FuturesUnordered::new();
    for _ in 0..count {
        if pending.len() >= IN_FLIGHT {
            pending.next().await.expect("pending")?;
        }
        let (mut conn, envelope) = (conn.clone(), &envelope);
        pending.push(async move {
            redis::cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("v")
                .arg(envelope.v)
                .arg("id")
                .arg(&envelope.id)
                .arg("event")
                .arg(&envelope.event)
                .arg("payload")
                .arg(&envelope.payload)
                .arg("emitted_at")
                .arg(envelope.emitted_at)
                .query_async::<String>(&mut conn)
                .await
        });
    }
    while let Some(result) = pending.next().await {
        result?;
    }
    Ok(())
}

/// A consumer's loop until the handlers counted `goal` entries: `XREADGROUP`
/// up to [`IN_FLIGHT`] entries, decode each envelope's event, call the
/// handler, and acknowledge the batch with one `XACK`.
async fn floor_consume(
    mut conn: MultiplexedConnection,
    key: String,
    consumer: String,
    goal: u64,
) -> Result<()> {
    let mut ids: Vec<Vec<u8>> = Vec::with_capacity(IN_FLIGHT);
    while HANDLED.load(Ordering::Relaxed) < goal {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&consumer)
            .arg("COUNT")
            .arg(IN_FLIGHT)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let Value::Array(streams) = reply else {
            continue; // nil: the block timed out
        };
        for stream in streams {
            let Value::Array(mut pair) = stream else {
                return Err("unexpected XREADGROUP reply".into());
            };
            let Some(Value::Array(entries)) = pair.pop() else {
                return Err("unexpected XREADGROUP reply".into());
            };
            for entry in entries {
                let Value::Array(mut parts) = entry else {
                    return Err("unexpected entry".into());
                };
                let (Some(Value::Array(fields)), Some(Value::BulkString(id))) =
                    (parts.pop(), parts.pop())
                else {
                    return Err("unexpected entry".into());
                };
                let tick = floor_decode(&fields)?;
                count(&tick);
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            let _: u64 = redis::cmd("XACK")
                .arg(&key)
                .arg(GROUP)
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
            ids.clear();
        }
    }
    Ok(())
}

/// The event in an entry's fields: checks the envelope's version and event
/// name, and decodes its payload.
fn floor_decode(fields: &[Value]) -> Result<Tick> {
    let field = |name: &[u8]| {
        fields.chunks_exact(2).find_map(|pair| match pair {
            [Value::BulkString(k), Value::BulkString(v)] if k == name => Some(v.as_slice()),
            _ => None,
        })
    };
    if field(b"v") != Some(b"1") || field(b"event") != Some(b"Tick") {
        return Err("not a Tick envelope".into());
    }
    let payload = field(b"payload").ok_or("no payload")?;
    Ok(serde_json::from_slice(payload)?)
}

// Measuring.

/// One measurement: a rate, and CPU microseconds per entry of this process
/// and of Redis.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rate: f64,
    cpu: f64,
    redis: f64,
}

/// Runs `work` and measures it over `count` entries.
async fn measure(
    conn: &mut MultiplexedConnection,
    count: u64,
    work: impl Future<Output = Result<()>>,
) -> Result<Sample> {
    let (redis_before, cpu_before) = (redis_cpu(conn).await?, process_cpu()?);
    let start = Instant::now();
    work.await?;
    let elapsed = start.elapsed();
    let (cpu_after, redis_after) = (process_cpu()?, redis_cpu(conn).await?);
    #[allow(clippy::cast_precision_loss)]
    let count = count as f64;
    Ok(Sample {
        rate: count / elapsed.as_secs_f64(),
        cpu: (cpu_after - cpu_before) * 1e6 / count,
        redis: (redis_after - redis_before) * 1e6 / count,
    })
}

/// Each row's samples, floor and pyventus, in the order first added.
#[derive(Default)]
struct Table {
    rows: Vec<(&'static str, Vec<Sample>, Vec<Sample>)>,
}

impl Table {
    fn add(&mut self, what: &'static str, floor: Sample, pyventus: Sample) {
        eprintln!(
            "  {what}: floor {:.0} /s {:.1} µs, pyventus {:.0} /s {:.1} µs",
            floor.rate, floor.cpu, pyventus.rate, pyventus.cpu
        );
        match self.rows.iter_mut().find(|(w, ..)| *w == what) {
            Some((_, floors, ours)) => {
                floors.push(floor);
                ours.push(pyventus);
            }
            None => self.rows.push((what, vec![floor], vec![pyventus])),
        }
    }

    fn print(&self) {
        println!(
            "| what | floor rate | pyventus rate | floor CPU per entry | pyventus CPU per entry | CPU pyventus / floor | Redis CPU per entry, floor / pyventus |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (what, floor, ours) in &self.rows {
            let median = |samples: &[Sample], get: fn(&Sample) -> f64| {
                let mut values: Vec<f64> = samples.iter().map(get).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            let (floor_cpu, our_cpu) = (median(floor, |s| s.cpu), median(ours, |s| s.cpu));
            println!(
                "| {what} | {:.0} /s | {:.0} /s | {floor_cpu:.1} µs | {our_cpu:.1} µs | {:.2}× | {:.1} / {:.1} µs |",
                median(floor, |s| s.rate),
                median(ours, |s| s.rate),
                our_cpu / floor_cpu,
                median(floor, |s| s.redis),
                median(ours, |s| s.redis),
            );
        }
    }
}

/// This process's CPU time in seconds (user and system, every thread).
fn process_cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // After the command's name: state, then 10 fields, then utime and stime.
    let rest = stat
        .get(stat.rfind(')').ok_or("/proc/self/stat")? + 2..)
        .ok_or("/proc/self/stat")?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut tick = || -> Result<u64> { Ok(fields.next().ok_or("/proc/self/stat")?.parse()?) };
    let ticks = tick()? + tick()?;
    // Linux counts these in USER_HZ, 100 a second.
    #[allow(clippy::cast_precision_loss)]
    Ok(ticks as f64 / 100.0)
}

/// Redis's CPU time so far, in seconds (`used_cpu_sys` + `used_cpu_user`).
async fn redis_cpu(conn: &mut MultiplexedConnection) -> Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let field = |name: &str| -> Result<f64> {
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .ok_or("INFO cpu")?
            .trim()
            .parse()?)
    };
    Ok(field("used_cpu_sys")? + field("used_cpu_user")?)
}
