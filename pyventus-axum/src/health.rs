//! A broker worker's health as HTTP probes, for a worker process that serves
//! nothing else: liveness and readiness the way Kubernetes and load balancers
//! read them (a status code), with the health in the body for people.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use pyventus_core::remote::Health;
use tokio::sync::watch;

/// Routes that answer a worker's probes from its health (the receiver of its
/// `watch_health()`):
///
/// - `GET /health/live`: 200 while the worker runs or is about to (starting,
///   ready, reconnecting, stopping), 503 once it stopped or failed: restart it.
/// - `GET /health/ready`: 200 while it takes messages, 503 otherwise.
///
/// The body is the health, as `Ready` or `Reconnecting { .. }`. Add routes of
/// your own (`/metrics`) to the router it returns.
///
/// # Examples
///
/// ```
/// # async fn doc() -> std::io::Result<()> {
/// use pyventus_core::remote::HealthWatch;
///
/// // A worker's `watch_health()`; a watch of one's own here.
/// let health = HealthWatch::new();
/// let probes = pyventus_axum::health_routes(health.watch());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// tokio::spawn(async move { axum::serve(listener, probes).await });
/// # Ok(()) }
/// ```
pub fn health_routes(health: watch::Receiver<Health>) -> Router {
    let live = health.clone();
    Router::new()
        .route(
            "/health/live",
            get(move || std::future::ready(answer(&live, Health::is_alive))),
        )
        .route(
            "/health/ready",
            get(move || std::future::ready(answer(&health, Health::is_ready))),
        )
}

fn answer(health: &watch::Receiver<Health>, ok: fn(&Health) -> bool) -> (StatusCode, String) {
    let health = *health.borrow();
    let status = if ok(&health) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{health:?}"))
}
