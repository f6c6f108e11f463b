//! Helpers of the RabbitMQ tests: the broker to test against, fresh queues and
//! their cleanup, raw publishing, waiting with a bound, and private RabbitMQ
//! nodes for the tests that alarm or break a broker (never the shared one).

use super::until;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};
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

/// How many messages a RabbitMQ queue has ready, or `None` if it does not
/// exist (a passive declaration, which would not declare it).
pub async fn ready_if_exists(url: &str, name: &str) -> Option<u32> {
    let (connection, channel) = raw(url).await;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let count = channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await
        .ok()
        .map(|queue| queue.message_count());
    let _ = connection.close(200, "OK".into()).await;
    count
}

fn required() -> bool {
    std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// A free TCP port on the loopback interface.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port()
}

/// A RabbitMQ node of the test's own, on free ports with its own node name,
/// database and logs in a fresh directory: for the tests that raise alarms on a
/// broker (never the shared one). Its Erlang VM is killed, and its directory
/// removed, when the last handle drops.
///
/// Started through `rabbitmq-server` and driven through `rabbitmqctl -n`, as
/// found on the `PATH` (the packaged wrappers run the broker as the `rabbitmq`
/// user when called by root, which is why the directory is writable by all).
pub struct RabbitNode {
    server: Mutex<Option<Child>>,
    name: String,
    port: u16,
    dir: PathBuf,
}

impl RabbitNode {
    /// A node shared by the tests of this binary that run at the same time
    /// (one boot, which is slow, for them all), or `None` (after saying why) if
    /// `rabbitmq-server` cannot be run here and is not required. Tests that
    /// change the node's state (alarms) take [`RabbitNode::exclusive`] too.
    pub async fn shared() -> Option<Arc<RabbitNode>> {
        tokio::task::spawn_blocking(Self::shared_blocking)
            .await
            .unwrap()
    }

    fn shared_blocking() -> Option<Arc<RabbitNode>> {
        static SHARED: Mutex<Weak<RabbitNode>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(node) = slot.upgrade() {
            return Some(node);
        }
        let node = Arc::new(RabbitNode::start()?);
        *slot = Arc::downgrade(&node);
        Some(node)
    }

    /// Serializes the tests that change the node's state.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'static, ()> {
        static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        EXCLUSIVE.lock().await
    }

    fn start() -> Option<RabbitNode> {
        let installed = Command::new("rabbitmqctl")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            assert!(
                !required(),
                "rabbitmq-server is required (PYVENTUS_REQUIRE_SERVICES=1) but cannot be run: \
                 the fault tests start a private node"
            );
            super::skip(
                "rabbitmq-server cannot be run here (the fault tests start a private node)",
            );
            return None;
        }
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let name = format!("pyventus-test-{suffix}@localhost");
        let dir = std::env::temp_dir().join(format!("pyventus-rabbit-{suffix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (port, dist_port) = (free_port(), free_port());
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let config = file(
            "rabbitmq.conf",
            &format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        );
        let env_file = file("rabbitmq-env.conf", "");
        let plugins = file("enabled_plugins", "[].\n");
        // The broker may run as another user: everything here is its to write.
        let _ = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&dir)
            .status();
        let server = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env("RABBITMQ_CONF_ENV_FILE", &env_file)
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts");
        let node = RabbitNode {
            server: Mutex::new(Some(server)),
            name,
            port,
            dir,
        };
        node.wait_until_up();
        Some(node)
    }

    /// Waits until the node takes AMQP connections (a minute at most: a boot
    /// takes about ten seconds on a busy machine).
    fn wait_until_up(&self) {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.poll_until_up())
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        });
    }

    /// [`wait_until_up`](Self::wait_until_up), on a thread outside any runtime.
    fn poll_until_up(&self) {
        let start = Instant::now();
        let url = self.url();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        loop {
            let connected = runtime.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(2),
                    Connection::connect(&url, ConnectionProperties::default()),
                )
                .await
            });
            if let Ok(Ok(connection)) = connected {
                let _ = runtime.block_on(connection.close(200, "OK".into()));
                return;
            }
            let exited = self
                .server
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none() && start.elapsed() < Duration::from_mins(1),
                "the private RabbitMQ node {} did not start ({exited:?}); see {}",
                self.name,
                self.dir.join("log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The node's AMQP URL.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl -n <node> <args>` and returns what it printed; fails
    /// the test if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let output = Command::new("rabbitmqctl")
            .args(["-n", &self.name, "-q"])
            .args(args)
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// [`ctl`](Self::ctl) off the async workers.
    pub async fn ctl_async(self: &Arc<Self>, args: &[&str]) -> String {
        let node = Arc::clone(self);
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            node.ctl(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap()
    }

    /// Raises the memory alarm (a high watermark of one byte): the broker
    /// blocks every connection that publishes. Returns once the alarm is on;
    /// [`Alarm`]'s drop clears it, whatever the test did.
    pub async fn memory_alarm(self: &Arc<Self>) -> Alarm {
        self.ctl_async(&["set_vm_memory_high_watermark", "absolute", "1"])
            .await;
        let alarm = Alarm(Arc::clone(self));
        until(Duration::from_secs(20), "the memory alarm", async || {
            self.ctl_async(&["eval", "rabbit_alarm:get_alarms()."])
                .await
                .contains("memory")
        })
        .await;
        alarm
    }

    /// The client-given name and the state (`running`, `blocking`, `blocked`,
    /// ...) of each connection whose name contains `name`.
    pub async fn connection_states(self: &Arc<Self>, name: &str) -> Vec<(String, String)> {
        self.ctl_async(&[
            "list_connections",
            "client_properties",
            "state",
            "--no-table-headers",
        ])
        .await
        .lines()
        .filter_map(|line| {
            let (_, after) = line.split_once("\"connection_name\",\"")?;
            let (connection, _) = after.split_once('"')?;
            let state = line.rsplit('\t').next()?;
            Some((connection.to_owned(), state.to_owned()))
        })
        .filter(|(connection, _)| connection.contains(name))
        .collect()
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        // The Erlang VM's own process id: the wrapper may run it in a session
        // of its own, under another user, where killing the wrapper would not
        // reach it.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        if let Some(mut server) = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raised memory alarm on a private node, cleared when dropped.
pub struct Alarm(Arc<RabbitNode>);

impl Alarm {
    /// Clears the alarm now, and waits until the broker says it is gone.
    pub async fn clear(self) {
        self.0
            .ctl_async(&["set_vm_memory_high_watermark", "0.4"])
            .await;
        let node = Arc::clone(&self.0);
        until(Duration::from_secs(20), "the alarm to clear", async || {
            !node
                .ctl_async(&["eval", "rabbit_alarm:get_alarms()."])
                .await
                .contains("memory")
        })
        .await;
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args([
                "-n",
                &self.0.name,
                "-q",
                "set_vm_memory_high_watermark",
                "0.4",
            ])
            .output();
    }
}
