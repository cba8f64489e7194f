//! The operator's HTTP endpoints: `/healthz` (the process serves), `/readyz` (the
//! operator has checked the cluster and is running) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// State shared by the handlers and the operator.
pub struct Health {
    ready: AtomicBool,
    metrics: Arc<Metrics>,
    /// `/healthz` fails once a watch has failed without a success for this long.
    watch_stall_limit: Duration,
}

impl Health {
    /// Not ready until [`Health::set_ready`] is called.
    pub fn new(metrics: Arc<Metrics>, watch_stall_limit: Duration) -> Arc<Self> {
        Arc::new(Self {
            ready: AtomicBool::new(false),
            metrics,
            watch_stall_limit,
        })
    }

    /// Flips `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// What `/readyz` answers.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// The router, separate from the listener so tests can drive it.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

/// Alive unless a watch has been failing for longer than the limit: then restarting
/// the process (a fresh client, fresh watches) is the remedy left.
async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let stalled = crate::controller::watch::stalled(health.watch_stall_limit);
    if stalled.is_empty() {
        return (StatusCode::OK, "ok\n".to_owned());
    }
    let list: Vec<String> = stalled
        .iter()
        .map(|(watch, failing)| format!("{watch} for {}s", failing.as_secs()))
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("watches failing without recovery: {}\n", list.join(", ")),
    )
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    match health.metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Binds `addr` and serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}
