//! An axum service on PostgreSQL: `POST /orders` inserts an order and emits
//! `OrderPlaced` in the same transaction (both commit, or neither), and a
//! relay hands each committed event to the `shop` crate's handlers.
//!
//! ```sh
//! cargo run -p pyventus-examples --example postgres_outbox --features postgres
//! curl -X POST -d 'ada@example.com' http://127.0.0.1:3000/orders
//! ```
//!
//! `PYVENTUS_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! points it at another database. The relay runs in this process here; in
//! production it can run in as many processes as you like, the web servers
//! included (see `docs/postgres.md`). `--smoke` serves on an ephemeral port,
//! places one order itself, waits for its handlers and shuts down (the test
//! suite runs it that way).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use pyventus::postgres::{Outbox, Relay};
use shop::OrderPlaced;
use sqlx::PgPool;
use tokio::net::TcpListener;

#[derive(Clone)]
struct App {
    pool: PgPool,
    outbox: Outbox,
}

/// Inserts the order and emits its event in one transaction.
async fn place_order(
    State(app): State<App>,
    email: String,
) -> Result<(StatusCode, String), AppError> {
    let mut tx = app.pool.begin().await?;
    let order_id: i64 =
        sqlx::query_scalar("INSERT INTO shop_orders (email) VALUES ($1) RETURNING id")
            .bind(&email)
            .fetch_one(&mut *tx)
            .await?;
    app.outbox
        .emit(
            &mut tx,
            OrderPlaced {
                order_id: order_id.unsigned_abs(),
                email,
            },
        )
        .await?;
    // The order and its event become visible together; on an error above,
    // dropping `tx` rolls both back.
    tx.commit().await?;
    Ok((StatusCode::CREATED, format!("order {order_id}\n")))
}

/// Any failure answers 500, and says why in the log.
struct AppError(pyventus::postgres::Error);

impl<E: Into<pyventus::postgres::Error>> From<E> for AppError {
    fn from(err: E) -> Self {
        AppError(err.into())
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        eprintln!("cannot place the order: {}", self.0);
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot place the order\n",
        )
            .into_response()
    }
}

fn smoke() -> bool {
    std::env::args().any(|arg| arg == "--smoke")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = PgPool::connect(&pyventus::postgres::url_from_env()).await?;
    let outbox = Outbox::builder().build(&pool)?;
    // Once per deploy in real life; here, at every start (it is idempotent).
    outbox.migrate().await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS shop_orders (id bigserial PRIMARY KEY, email text NOT NULL)",
    )
    .execute(&pool)
    .await?;

    // The relay: the `shop` crate's link-time handlers, from the global linker.
    let relay = Relay::builder(&outbox).build()?;
    let relaying = tokio::spawn({
        let relay = relay.clone();
        async move { relay.run().await }
    });

    let app = Router::new()
        .route("/orders", post(place_order))
        .with_state(App { pool, outbox });
    let listener = TcpListener::bind(if smoke() {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    })
    .await?;
    let addr = listener.local_addr()?;
    println!("Listening on http://{addr}/orders");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });

    if smoke() {
        let recorded = shop::orders_recorded();
        print!("{}", http_post(addr, "/orders", "ada@example.com").await?);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while shop::orders_recorded() == recorded && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        tokio::signal::ctrl_c().await?;
    }

    let _ = stop.send(());
    server.await??;
    relay.shutdown();
    relaying.await??;
    println!("Shut down; relay: {:?}", relay.stats());
    Ok(())
}

/// A minimal HTTP/1.1 POST over a fresh connection, returning the body.
async fn http_post(addr: std::net::SocketAddr, path: &str, body: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned())
}
