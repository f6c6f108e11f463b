//! The two processes as a deployment runs them, against the real Redis: the
//! worker and the web server started as child processes on a queue of their
//! own, orders posted over HTTP, what each handler did read back from Redis,
//! the metrics and probes scraped, and both stopped with SIGTERM.

use std::process::Stdio;
use std::time::{Duration, Instant};

use orders::{Store, Web};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The shared Redis, or `None` when it is not reachable and not required
/// (`PYVENTUS_REQUIRE_SERVICES=1`, as CI sets, makes it required).
async fn redis_url() -> Option<String> {
    let url = pyventus::redis::url_from_env();
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    match tokio::time::timeout(Duration::from_secs(3), reachable).await {
        Ok(Some(_)) => Some(url),
        _ if std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("Redis is required (PYVENTUS_REQUIRE_SERVICES=1) but not reachable at {url}")
        }
        _ => {
            eprintln!(
                "SKIPPED: no Redis reachable at {url} (set PYVENTUS_REDIS_URL to run this test)"
            );
            None
        }
    }
}

/// Starts one of the package's binaries and returns it with the address it
/// printed on its first line.
async fn start(bin: &str, url: &str, queue: &str) -> (Child, String) {
    let mut child = Command::new(bin)
        .env("PYVENTUS_REDIS_URL", url)
        .env("ORDERS_QUEUE", queue)
        .env("ORDERS_ADDR", "127.0.0.1:0")
        .env("ORDERS_WORKER_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {bin}: {err}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{bin} printed no address in 20 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("{bin} exited before it printed its address"));
    let addr = first
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("{bin} printed {first:?}"))
        .to_owned();
    // The rest of its output, for its last line.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    OUTPUTS.lock().unwrap().push((bin.to_owned(), rx));
    (child, addr)
}

type Output = (String, tokio::sync::mpsc::UnboundedReceiver<String>);
static OUTPUTS: std::sync::Mutex<Vec<Output>> = std::sync::Mutex::new(Vec::new());

/// What `bin` printed after its address.
fn printed(bin: &str) -> Vec<String> {
    let mut outputs = OUTPUTS.lock().unwrap();
    let (_, rx) = outputs.iter_mut().find(|(name, _)| name == bin).unwrap();
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// One HTTP/1.1 request over a fresh connection: the status and the body.
async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn until(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn exit_status(child: &mut Child, bin: &str) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{bin} still running 10 s after SIGTERM"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_process_and_a_worker_share_the_handlers_crate_state_metrics_and_a_sigterm_drain() {
    let Some(url) = redis_url().await else { return };
    let queue = format!("orders-test-{}", std::process::id());
    let store = Store::connect(&url, &queue).await.unwrap();
    store.clear().await.unwrap();

    let (mut worker, probes) = start(env!("CARGO_BIN_EXE_orders-worker"), &url, &queue).await;
    let (mut web, addr) = start(env!("CARGO_BIN_EXE_orders-web"), &url, &queue).await;

    // Three orders; one refused with a 422, which emits nothing.
    for id in 1..=3 {
        let order = format!(r#"{{"id": {id}, "email": "customer{id}@example.com"}}"#);
        assert_eq!(http(&addr, "POST", "/orders", &order).await.0, 202);
    }
    let refused = http(&addr, "POST", "/orders", r#"{"id": 4, "email": "nobody"}"#).await;
    assert_eq!(refused.0, 422, "{refused:?}");

    // The worker's handler, with the state its process provided.
    until(
        Duration::from_secs(10),
        "the worker sent 3 confirmations",
        async || store.list("sent").await.unwrap().len() == 3,
    )
    .await;
    let mut sent = store.list("sent").await.unwrap();
    sent.sort();
    assert_eq!(
        sent,
        [
            "1 customer1@example.com",
            "2 customer2@example.com",
            "3 customer3@example.com"
        ]
    );
    // The web process's handlers after the responses, with its state; the
    // `#[once]` handler ran for one order only.
    until(
        Duration::from_secs(10),
        "the web handlers ran",
        async || {
            store.list("recorded").await.unwrap().len() == 3
                && store.list("audited").await.unwrap().len() == 3
        },
    )
    .await;
    assert_eq!(store.list("first").await.unwrap().len(), 1);

    scrape(&addr, &probes).await;

    // SIGTERM right after a response: the slow audit (300 ms) of order 5 is
    // still running, and the server waits for it before it exits.
    let order = r#"{"id": 5, "email": "late@example.com"}"#;
    assert_eq!(http(&addr, "POST", "/orders", order).await.0, 202);
    sigterm(&web);
    let status = exit_status(&mut web, "orders-web").await;
    assert!(status.success(), "orders-web exited with {status}");
    assert!(
        store
            .list("audited")
            .await
            .unwrap()
            .contains(&"5".to_owned()),
        "the audit pending at SIGTERM ran before the process exited"
    );
    let drained = printed(env!("CARGO_BIN_EXE_orders-web"));
    assert!(
        drained.iter().any(|line| line.starts_with("drained ")),
        "{drained:?}"
    );

    until(
        Duration::from_secs(10),
        "the worker sent order 5",
        async || store.list("sent").await.unwrap().len() == 4,
    )
    .await;
    sigterm(&worker);
    let status = exit_status(&mut worker, "orders-worker").await;
    assert!(status.success(), "orders-worker exited with {status}");
    let stopped = printed(env!("CARGO_BIN_EXE_orders-worker"));
    assert!(
        stopped
            .iter()
            .any(|line| line == "stopped: 4 processed, 0 retried, 0 dead-lettered"),
        "{stopped:?}"
    );

    clear(&store, &url, &queue).await;
}

/// Metrics, described (`# HELP`), and the worker's probes.
async fn scrape(addr: &str, probes: &str) {
    let (status, metrics) = http(addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# HELP pyventus_deliveries_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"pyventus_deliveries_succeeded_total{event="OrderPlaced",processor="tokio"} 7"#
        ),
        "3 recorded, 3 audited, 1 first: {metrics}"
    );
    let (status, worker_metrics) = http(probes, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        worker_metrics.contains(r#"pyventus_worker_acked_total{backend="redis"} 3"#),
        "{worker_metrics}"
    );
    assert_eq!(
        http(probes, "GET", "/health/ready", "").await,
        (200, "Ready".to_owned())
    );
    assert_eq!(http(probes, "GET", "/health/live", "").await.0, 200);
}

/// Deletes what the test wrote: the store's lists and the queue's keys.
async fn clear(store: &Store, url: &str, queue: &str) {
    store.clear().await.unwrap();
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("pyventus:{{{queue}}}:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
}

/// Every state a handler of either namespace takes is one each process
/// provides: what `pyventus::verify()` checks in a test of a real service.
#[tokio::test]
async fn each_process_provides_what_its_handlers_take() {
    let Some(url) = redis_url().await else { return };
    assert_eq!(
        Web::linker().missing_states().len(),
        3,
        "before startup, the web handlers' Store is missing"
    );
    Web::linker().provide(Store::connect(&url, "orders-verify").await.unwrap());
    assert!(Web::linker().missing_states().is_empty());
    // The web process targets the worker's handlers through `Jobs`: an
    // emitter on `Jobs` targets nothing the worker (also on `Jobs`) lacks.
    assert!(
        orders::Jobs::linker()
            .handlers_missing_from(&orders::Jobs::linker())
            .is_empty()
    );
}
