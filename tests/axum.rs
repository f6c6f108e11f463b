//! The axum integration against a real server on 127.0.0.1, driven by a real
//! HTTP client (hyper's) and, to disconnect at chosen moments, by raw TCP.
#![cfg(feature = "axum")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::routing::get;
use common::Record;
use http_body_util::BodyExt;
use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};
use pyventus::{EventLinker, ExecutorProcessingService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A linker whose three events append to `record`, each after `gate` opens (if any).
fn linker(record: &Record, gate: Option<&Arc<Notify>>) -> EventLinker {
    let linker = EventLinker::builder().debug(false).build();
    for name in ["first", "second", "third"] {
        let (record, gate) = (record.clone(), gate.cloned());
        linker
            .on_named(name)
            .subscribe_async(move |n: u32| {
                let (record, gate) = (record.clone(), gate.clone());
                async move {
                    if let Some(gate) = gate {
                        gate.notified().await;
                    }
                    record.push(format!("{name} {n}"));
                }
            })
            .unwrap();
    }
    linker
}

fn emit_three(emitter: &BackgroundEmitter) {
    for (i, name) in ["first", "second", "third"].into_iter().enumerate() {
        emitter.emit_named(name, u32::try_from(i).unwrap()).unwrap();
    }
}

/// Serves `app` on an ephemeral port of 127.0.0.1.
async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A GET through hyper's client: status and full body.
async fn get_full(addr: std::net::SocketAddr, path: &str) -> (StatusCode, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let response = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// Waits until everything the layer started has finished.
async fn drain(layer: &BackgroundEmitterLayer) {
    layer.close();
    tokio::time::timeout(Duration::from_secs(10), layer.wait())
        .await
        .expect("the layer did not drain");
}

/// A response body of three chunks: the first at once, the rest when `more` opens.
fn slow_body(more: Arc<Notify>) -> Body {
    let chunks = futures::stream::unfold(0, move |i| {
        let more = more.clone();
        async move {
            match i {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from_static(b"chunk 0\n")), 1)),
                1 | 2 => {
                    more.notified().await;
                    Some((Ok(Bytes::from(format!("chunk {i}\n"))), i + 1))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(chunks)
}

/// A layer on `record`'s linker, and a server whose one route emits the three
/// events and answers with `slow_body(gate)`.
async fn slow_body_server(
    record: &Record,
    gate: &Arc<Notify>,
) -> (BackgroundEmitterLayer, std::net::SocketAddr) {
    let layer = BackgroundEmitterLayer::new().linker(linker(record, None));
    let gate = gate.clone();
    let app = Router::new()
        .route(
            "/",
            get(move |emitter: BackgroundEmitter| {
                let gate = gate.clone();
                async move {
                    emit_three(&emitter);
                    slow_body(gate)
                }
            }),
        )
        .layer(layer.clone());
    (layer, serve(app).await)
}

/// Sends a raw `GET /` over a new connection, without reading the answer.
async fn send_get(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// Sends a raw GET over a new connection and reads until the first chunk of the
/// body has arrived; returns the connection, mid-body.
async fn get_first_chunk(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = send_get(addr).await;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("chunk 0") {
        let mut buf = [0; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed before the first chunk");
        seen.extend_from_slice(&buf[..n]);
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_runs_before_the_body_is_sent_then_everything_runs_in_order() {
    let record = Record::default();
    let more = Arc::new(Notify::new());
    let (layer, addr) = slow_body_server(&record, &more).await;
    let mut stream = get_first_chunk(addr).await;
    // The client holds part of the body: nothing may have run.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(record.len(), 0, "an emission ran before the body was sent");

    more.notify_waiters();
    tokio::time::sleep(Duration::from_millis(20)).await;
    more.notify_waiters();
    let mut rest = Vec::new();
    while !String::from_utf8_lossy(&rest).contains("0\r\n\r\n") {
        let mut buf = [0; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed before the end of the body");
        rest.extend_from_slice(&buf[..n]);
    }
    drain(&layer).await;
    assert_eq!(record.take(), ["first 0", "second 1", "third 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_does_not_wait_for_slow_handlers() {
    let record = Record::default();
    let gate = Arc::new(Notify::new());
    let layer = BackgroundEmitterLayer::new().linker(linker(&record, Some(&gate)));
    let app = Router::new()
        .route(
            "/",
            get(|emitter: BackgroundEmitter| async move {
                emit_three(&emitter);
                "sent"
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;

    // The subscribers wait for a gate that only opens once the client has the
    // whole response: if the response waited for them, this would time out.
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), get_full(addr, "/"))
        .await
        .expect("the response waited for the handlers");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"sent"[..]));
    assert_eq!(record.len(), 0);
    // One subscriber at a time waits at the gate (they run in order).
    while record.len() < 3 {
        gate.notify_waiters();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drain(&layer).await;
    assert_eq!(record.take(), ["first 0", "second 1", "third 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_response_or_a_discard_runs_nothing() {
    let record = Record::default();
    let layer = BackgroundEmitterLayer::new().linker(linker(&record, None));
    let app = Router::new()
        .route(
            "/error",
            get(|emitter: BackgroundEmitter| async move {
                emit_three(&emitter);
                (StatusCode::INTERNAL_SERVER_ERROR, "failed")
            }),
        )
        .route(
            "/discard",
            get(|emitter: BackgroundEmitter| async move {
                emit_three(&emitter);
                emitter.discard();
                "ok, but never mind"
            }),
        )
        .route(
            "/teapot",
            get(|emitter: BackgroundEmitter| async move {
                emit_three(&emitter);
                StatusCode::IM_A_TEAPOT
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    assert_eq!(
        get_full(addr, "/error").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(get_full(addr, "/discard").await.0, StatusCode::OK);
    assert_eq!(get_full(addr, "/teapot").await.0, StatusCode::IM_A_TEAPOT);
    drain(&layer).await;
    assert_eq!(record.take(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_decides_which_responses_commit() {
    let record = Record::default();
    let layer = BackgroundEmitterLayer::new()
        .linker(linker(&record, None))
        .commit_if(|status| status == StatusCode::IM_A_TEAPOT);
    let app = Router::new()
        .route(
            "/",
            get(|emitter: BackgroundEmitter| async move {
                emit_three(&emitter);
                StatusCode::IM_A_TEAPOT
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    get_full(addr, "/").await;
    drain(&layer).await;
    assert_eq!(record.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_body_loses_nothing() {
    let record = Record::default();
    let never = Arc::new(Notify::new());
    let (layer, addr) = slow_body_server(&record, &never).await;
    let stream = get_first_chunk(addr).await;
    drop(stream); // gone mid-body; the body will never end

    // hyper notices, drops the body, and the emissions run.
    tokio::time::timeout(Duration::from_secs(10), async {
        while record.len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the emissions of an abandoned body did not run");
    drain(&layer).await;
    assert_eq!(record.take(), ["first 0", "second 1", "third 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_handler_loses_nothing_when_detached() {
    let record = Record::default();
    let layer = BackgroundEmitterLayer::new().linker(linker(&record, None));
    let (entered, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (entered_tx, proceed_rx) = (entered.clone(), proceed.clone());
    let app = Router::new()
        .route(
            "/",
            get(move |emitter: BackgroundEmitter| {
                let (entered, proceed) = (entered_tx.clone(), proceed_rx.clone());
                async move {
                    emit_three(&emitter);
                    entered.notify_one();
                    proceed.notified().await; // the client leaves meanwhile
                    "done"
                }
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;

    let stream = send_get(addr).await;
    entered.notified().await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(50)).await; // hyper sees the disconnect
    proceed.notify_one();

    drain(&layer).await;
    assert_eq!(record.take(), ["first 0", "second 1", "third 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_detach_a_disconnect_mid_handler_cancels_it_and_its_emissions() {
    let record = Record::default();
    let layer = BackgroundEmitterLayer::new()
        .linker(linker(&record, None))
        .detach_from_client(false);
    let entered = Arc::new(Notify::new());
    let entered_tx = entered.clone();
    let app = Router::new()
        .route(
            "/",
            get(move |emitter: BackgroundEmitter| {
                let entered = entered_tx.clone();
                async move {
                    emit_three(&emitter);
                    entered.notify_one();
                    std::future::pending::<()>().await; // until cancelled
                    "never"
                }
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    let stream = send_get(addr).await;
    entered.notified().await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain(&layer).await;
    assert_eq!(
        record.len(),
        0,
        "the handler never returned a response to commit them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_every_dispatched_emission() {
    let record = Record::default();
    let slow = EventLinker::builder().debug(false).build();
    let r = record.clone();
    slow.on_named("slow")
        .subscribe_async(move |n: u32| {
            let r = r.clone();
            async move {
                // Long enough that five requests answered one after the other
                // cannot all have had theirs finish yet.
                tokio::time::sleep(Duration::from_millis(300)).await;
                r.push(n.to_string());
            }
        })
        .unwrap();
    let layer = BackgroundEmitterLayer::new().linker(slow);
    let app = Router::new()
        .route(
            "/",
            get(|emitter: BackgroundEmitter| async move {
                emitter.emit_named("slow", 1_u32).unwrap();
                "queued"
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    for _ in 0..5 {
        get_full(addr, "/").await;
    }
    assert!(record.len() < 5, "the subscribers had not finished yet");
    drain(&layer).await;
    assert_eq!(record.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_processing_service_runs_the_emissions() {
    let record = Record::default();
    let pool = ExecutorProcessingService::with_threads(1);
    let layer = BackgroundEmitterLayer::new()
        .linker(linker(&record, None))
        .processor(pool.clone());
    let app = Router::new()
        .route(
            "/",
            get(|emitter: BackgroundEmitter| async move {
                emit_three(&emitter);
                "ok"
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    get_full(addr, "/").await;
    drain(&layer).await;
    assert_eq!(record.take(), ["first 0", "second 1", "third 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_the_layer_is_a_clear_500() {
    let app = Router::new().route(
        "/",
        get(|emitter: BackgroundEmitter| async move {
            let _ = emitter;
            "unreachable"
        }),
    );
    let addr = serve(app).await;
    let (status, body) = get_full(addr, "/").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("BackgroundEmitterLayer"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extractor_is_an_event_emitter() {
    fn app_service(emitter: &pyventus::EventEmitter) {
        emitter.emit_named("first", 7_u32).unwrap();
    }
    let record = Record::default();
    let layer = BackgroundEmitterLayer::new().linker(linker(&record, None));
    let app = Router::new()
        .route(
            "/",
            get(|emitter: BackgroundEmitter| async move {
                app_service(&emitter);
                "ok"
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    get_full(addr, "/").await;
    drain(&layer).await;
    assert_eq!(record.take(), ["first 7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_and_wait_inside_a_route_is_a_clear_error_and_the_layer_still_drains() {
    for detach in [true, false] {
        let record = Record::default();
        let layer = BackgroundEmitterLayer::new()
            .linker(linker(&record, None))
            .detach_from_client(detach);
        let app = Router::new()
            .route(
                "/",
                get(|emitter: BackgroundEmitter| async move {
                    // The emission would run after this response, which waits for this route.
                    let waited = tokio::time::timeout(
                        Duration::from_secs(5),
                        emitter.emit_named_and_wait("first", 1_u32),
                    )
                    .await;
                    emitter.emit_named("second", 2_u32).unwrap();
                    match waited {
                        Err(_) => "hung".to_owned(),
                        Ok(Ok(())) => "waited".to_owned(),
                        Ok(Err(err @ pyventus::Error::WouldDeadlock(_))) => {
                            format!("refused: {err}")
                        }
                        Ok(Err(err)) => format!("other error: {err}"),
                    }
                }),
            )
            .layer(layer.clone());
        let addr = serve(app).await;
        let (status, body) = get_full(addr, "/").await;
        assert_eq!(status, StatusCode::OK);
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with("refused: "), "detach {detach}: {body}");
        assert!(
            body.contains("use `emit`"),
            "the error says what to do: {body}"
        );
        drain(&layer).await;
        // The refused emission never runs; the others still do.
        assert_eq!(record.take(), ["second 2"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_and_wait_after_the_response_waits_for_the_handlers_and_succeeds() {
    let record = Record::default();
    let layer = BackgroundEmitterLayer::new().linker(linker(&record, None));
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), pyventus::Error>>();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    let app = Router::new()
        .route(
            "/",
            get(move |emitter: BackgroundEmitter| {
                let tx = tx.clone();
                async move {
                    emitter.emit_named("first", 0_u32).unwrap();
                    // A task of the route's, that outlives the response.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let waited = emitter.emit_named_and_wait("second", 1_u32).await;
                        if let Some(tx) = tx.lock().unwrap().take() {
                            let _ = tx.send(waited);
                        }
                    });
                    "ok"
                }
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    assert_eq!(get_full(addr, "/").await.0, StatusCode::OK);
    let waited = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("emit_and_wait after the response hung")
        .unwrap();
    assert_eq!(waited, Ok(()));
    assert_eq!(
        record.take(),
        ["first 0", "second 1"],
        "the wait returned once its handler ran"
    );
    drain(&layer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_and_wait_from_a_task_the_route_spawned_waits_for_the_response_instead_of_failing() {
    let record = Record::default();
    let layer = BackgroundEmitterLayer::new().linker(linker(&record, None));
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), pyventus::Error>>();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    let app = Router::new()
        .route(
            "/",
            get(move |emitter: BackgroundEmitter| {
                let tx = tx.clone();
                async move {
                    let (started_tx, started) = tokio::sync::oneshot::channel();
                    // Not the route itself: its wait does not hold up the response.
                    tokio::spawn(async move {
                        let waiting = emitter.emit_named_and_wait("first", 0_u32);
                        let _ = started_tx.send(());
                        let waited = waiting.await;
                        if let Some(tx) = tx.lock().unwrap().take() {
                            let _ = tx.send(waited);
                        }
                    });
                    // The task emits while the route is still running.
                    started.await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    "ok"
                }
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    assert_eq!(get_full(addr, "/").await.0, StatusCode::OK);
    let waited = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the task's wait hung")
        .unwrap();
    assert_eq!(waited, Ok(()));
    assert_eq!(record.take(), ["first 0"]);
    drain(&layer).await;
}

/// A worker's probes answer from its health: live while it runs or is about
/// to, ready only while it takes messages, and the body says which.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_workers_probes_answer_from_its_health() {
    use pyventus::remote::{Health, HealthWatch};

    let health = HealthWatch::new();
    let addr = serve(pyventus::axum::health_routes(health.watch())).await;
    let probe = async |path| {
        let (status, body) = get_full(addr, path).await;
        (status.as_u16(), String::from_utf8(body.to_vec()).unwrap())
    };
    assert_eq!(probe("/health/live").await, (200, "Starting".into()));
    assert_eq!(probe("/health/ready").await, (503, "Starting".into()));
    health.set(Health::Ready);
    assert_eq!(probe("/health/ready").await, (200, "Ready".into()));
    health.set(Health::Reconnecting {
        since: std::time::Instant::now(),
        attempts: 2,
    });
    let (status, body) = probe("/health/ready").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("Reconnecting"), "{body}");
    assert_eq!(probe("/health/live").await.0, 200);
    health.set(Health::Failed);
    assert_eq!(probe("/health/live").await, (503, "Failed".into()));
}

/// With a broker as the layer's processor, a request's remote emissions are
/// committed with its response, as local ones are: a 4xx sends nothing.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_emissions_are_committed_with_the_response() {
    use common::redis::{cleanup, connection, fresh_queue, redis_url, service, stream_key};

    #[derive(Debug, Clone, pyventus::Event, serde::Serialize, serde::Deserialize)]
    struct Remote(u32);

    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("axum-commit");
    let layer = BackgroundEmitterLayer::new()
        .linker(EventLinker::new())
        .processor(service(&url, &queue).await);
    let app = Router::new()
        .route(
            "/ok",
            get(|emitter: BackgroundEmitter| async move {
                emitter.emit(Remote(1)).unwrap();
                StatusCode::OK
            }),
        )
        .route(
            "/bad",
            get(|emitter: BackgroundEmitter| async move {
                emitter.emit(Remote(2)).unwrap();
                StatusCode::BAD_REQUEST
            }),
        )
        .layer(layer.clone());
    let addr = serve(app).await;
    assert_eq!(get_full(addr, "/bad").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(get_full(addr, "/ok").await.0, StatusCode::OK);
    drain(&layer).await;
    let mut conn = connection(&url).await;
    let len: usize = ::redis::cmd("XLEN")
        .arg(stream_key(&queue))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1, "only the 200's emission reached Redis");
    cleanup(&url, &queue).await;
}
