//! Every example in `examples/` runs, and prints what its comments promise:
//! the facade's own (`hello_world`, `namespaces`, `runtime_flexibility`,
//! `resilience`) and
//! the `pyventus-examples` package's. The examples are built first, for the
//! whole workspace as `cargo test --workspace --all-features` builds them (a
//! no-op after it; needed when only this test was asked for, or they could be
//! stale).

mod common;

use std::process::Command;
use std::sync::Once;

static BUILD: Once = Once::new();

/// Runs an example, returning its standard output.
fn run(name: &str) -> String {
    run_with(name, &[])
}

/// Runs an example with arguments, returning its standard output.
fn run_with(name: &str, args: &[&str]) -> String {
    run_with_env(name, args, &[])
}

/// Runs an example with arguments and environment, returning its standard output.
fn run_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    // This test binary is target/<profile>/deps/examples-<hash>; the examples
    // are in target/<profile>/examples/.
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    BUILD.call_once(|| {
        // Without the variables cargo set for this test (CARGO_PKG_NAME,
        // CARGO_MANIFEST_DIR, ...): build scripts that watch them (ring's) would
        // rerun, and everything above them rebuild.
        let set_for_this_test = std::env::vars_os().filter_map(|(key, _)| {
            let name = key.to_str()?;
            [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            .then_some(key)
        });
        let mut cargo = Command::new(env!("CARGO"));
        for key in set_for_this_test {
            cargo.env_remove(key);
        }
        let status = cargo
            .args(["build", "--workspace", "--examples", "--all-features"])
            .status()
            .expect("cannot run cargo to build the examples");
        assert!(status.success(), "the examples do not build");
    });
    let output = Command::new(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {}: {err} (built by `cargo test --workspace`?)",
                path.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_backend_on_the_public_seam_retries_only_the_handler_that_failed() {
    assert_eq!(
        run("custom_backend"),
        "published 1 envelope(s)\n\
         archived invoice 7 (attempt 1)\n\
         retrying [\"custom_backend::email_customer\"]: handler `custom_backend::email_customer` failed: mail server unavailable\n\
         emailed the customer about invoice 7\n\
         acknowledged InvoiceIssued\n"
    );
}

#[test]
fn hello_world() {
    assert_eq!(run("hello_world"), "Hello, World!\n");
}

#[test]
fn password_reset() {
    let out = run("password_reset");
    assert!(
        out.contains("Recovery email notified! (user 33171591"),
        "{out}"
    );
    assert!(
        out.contains("Sending token eyJhbGci... to user@example.com"),
        "{out}"
    );
    assert!(out.contains("SMTPConnectError received!"), "{out}");
    assert!(out.contains("Logging: PasswordResetRequested {"), "{out}");
}

#[test]
fn namespaces() {
    assert_eq!(
        run("namespaces"),
        "User's PasswordResetEvent received! (example@email.com)\n\
         The global linker's handler is still waiting.\n"
    );
}

#[test]
fn resilience() {
    assert_eq!(
        run("resilience"),
        "order 7: mail server busy (attempt 1)\n\
         order 7: audited\n\
         audit OrderPlaced: attempt 1/2 ok, under a second\n\
         order 7: mail server busy (attempt 2)\n\
         order 7: confirmation sent (attempt 3)\n\
         warehouse: gave up after 2 attempts (timed out): timed out after 50ms\n\
         dead letter: OrderShipped after 2 attempts\n"
    );
}

#[test]
fn runtime_flexibility() {
    assert_eq!(
        run("runtime_flexibility"),
        "Hello, InlineProcessingService!\n\
         Hello, TokioProcessingService!\n\
         Hello, ExecutorProcessingService!\n"
    );
}

#[cfg(feature = "axum")]
#[test]
fn axum_server() {
    let out = run_with("axum_server", &["--smoke"]);
    // When the handler starts relative to the smoke client's own print is a
    // race (the client prints once the connection closes); that handlers start
    // only after the body is handed over is tested in tests/axum.rs. Here:
    // everything happened, and shutdown waited for the email.
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Listening on http://127.0.0.1:"),
        "{out}"
    );
    let mut rest = lines[1..].to_vec();
    assert_eq!(
        rest.pop(),
        Some("Shut down after every queued email was sent."),
        "{out}"
    );
    rest.sort_unstable();
    assert_eq!(
        rest,
        [
            "Email sent successfully!",
            "Sending email to: email@pyventus.com",
            r#"{"message": "Email sent!"}"#,
        ],
        "{out}"
    );
    let sent = lines.iter().position(|l| *l == "Email sent successfully!");
    let started = lines.iter().position(|l| l.starts_with("Sending email to"));
    assert!(started < sent, "{out}");
}

/// A broker the distributed examples run against.
#[cfg(any(feature = "redis", feature = "amqp"))]
struct Broker {
    /// The examples' prefix: `redis` or `amqp`.
    prefix: &'static str,
    /// As people call it, for messages.
    name: &'static str,
    /// Where it listens on this machine, and the variable that points elsewhere.
    addr: &'static str,
    url_var: &'static str,
    /// What the emitter says it did with the orders.
    sent: &'static str,
}

/// Runs `{prefix}_emitter`, `{prefix}_worker` and `{prefix}_dead_letters`,
/// built from one handler crate, over a real broker, on a fresh queue (whose
/// name it returns); `None` if the broker is missing and not required.
#[cfg(any(feature = "redis", feature = "amqp"))]
fn emitter_and_worker(broker: &Broker) -> Option<String> {
    let reachable =
        std::net::TcpStream::connect(broker.addr).is_ok() || std::env::var(broker.url_var).is_ok();
    if !reachable {
        assert_ne!(
            std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref(),
            Ok("1"),
            "{} is required (PYVENTUS_REQUIRE_SERVICES=1) but not reachable",
            broker.name
        );
        common::skip(&format!(
            "no {} at {} (set {})",
            broker.name, broker.addr, broker.url_var
        ));
        return None;
    }
    let example = |what: &str| format!("{}_{what}", broker.prefix);
    let queue = format!("test-examples-{}", std::process::id());
    let env = [("PYVENTUS_QUEUE", queue.as_str())];
    assert_eq!(
        run_with_env(&example("emitter"), &["3"], &env),
        format!("{} 3 orders on queue `{queue}`\n", broker.sent)
    );
    let out = run_with_env(&example("worker"), &["--exit-after", "3"], &env);
    for order in 1..=3 {
        assert!(out.contains(&format!("order {order} recorded")), "{out}");
        assert!(
            out.contains(&format!(
                "confirmation of order {order} sent to customer{order}@example.com"
            )),
            "{out}"
        );
    }
    assert!(
        out.ends_with("stopped: 3 processed, 0 retried, 0 dead-lettered\n"),
        "{out}"
    );
    let out = run_with_env(&example("dead_letters"), &["list"], &env);
    assert_eq!(out, format!("no dead letters on queue `{queue}`\n"));
    Some(queue)
}

/// The emitter and the worker, built from one handler crate, over a real Redis.
#[cfg(feature = "redis")]
#[test]
fn redis_emitter_and_worker() {
    emitter_and_worker(&Broker {
        prefix: "redis",
        name: "Redis",
        addr: "127.0.0.1:6379",
        url_var: "PYVENTUS_REDIS_URL",
        sent: "enqueued",
    });
}

/// The emitter and the worker, built from the same handler crate as the Redis
/// ones, over a real RabbitMQ.
#[cfg(feature = "amqp")]
#[test]
fn amqp_emitter_and_worker() {
    let queue = emitter_and_worker(&Broker {
        prefix: "amqp",
        name: "RabbitMQ",
        addr: "127.0.0.1:5672",
        url_var: "PYVENTUS_AMQP_URL",
        sent: "published",
    });
    if let Some(queue) = queue {
        delete_amqp_queue(&queue);
    }
}

/// Deletes a pyventus queue's broker objects.
#[cfg(feature = "amqp")]
fn delete_amqp_queue(queue: &str) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let url = pyventus::amqp::url_from_env();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        for name in [
            format!("pyventus.{queue}"),
            format!("pyventus.{queue}.dead"),
        ] {
            let _ = channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let dlx = format!("pyventus.{queue}.dlx");
        let _ = channel
            .exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        let _ = connection.close(200, "OK".into()).await;
    });
}

/// The axum route that inserts an order and emits `OrderPlaced` in the same
/// transaction, and the relay that hands it to the `shop` handlers, over a
/// real PostgreSQL.
#[cfg(feature = "postgres")]
#[test]
fn postgres_outbox() {
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok()
        || std::env::var("PYVENTUS_POSTGRES_URL").is_ok();
    if !reachable {
        assert_ne!(
            std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref(),
            Ok("1"),
            "PostgreSQL is required (PYVENTUS_REQUIRE_SERVICES=1) but not reachable"
        );
        common::skip("no PostgreSQL at 127.0.0.1:5432 (set PYVENTUS_POSTGRES_URL)");
        return;
    }
    let out = run_with("postgres_outbox", &["--smoke"]);
    assert!(out.contains("Listening on http://127.0.0.1:"), "{out}");
    let order = out
        .lines()
        .find_map(|line| {
            line.strip_prefix("order ")
                .filter(|rest| !rest.contains(' '))
        })
        .expect("the route answered with the order's id");
    assert!(
        out.contains(&format!("order {order} recorded")),
        "the relay ran the handler: {out}"
    );
    assert!(out.contains("delivered: 1"), "{out}");
}
