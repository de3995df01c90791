//! The HTTP endpoints: `/metrics` (Prometheus text), `/livez` (the process
//! answers; never depends on a registry) and `/readyz` (the first pod and
//! node lists have arrived).

use crate::controller::runner::Readiness;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    ready: Readiness,
}

/// The router serving the three endpoints.
pub fn router(metrics: Metrics, ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, ready })
}

/// Streams the scrape a chunk at a time (see [`crate::metrics::Scrape`]):
/// 30,000 containers' series are never held as one 10 MB string.
async fn scrape(State(s): State<AppState>) -> axum::response::Response {
    let mut chunks = s.metrics.scrape();
    // The first chunk (the shared registry) can fail; the rest only write text.
    match chunks.next() {
        Some(Ok(head)) => {
            let rest = chunks.map(|c| c.map_err(std::io::Error::other));
            let body = futures::stream::iter(std::iter::once(Ok(head)).chain(rest));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
        Some(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("cannot encode metrics: {e}"),
        )
            .into_response(),
        None => (StatusCode::OK, String::new()).into_response(),
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first pod and node lists",
        )
    }
}

/// Serves `router` on `listener` until `token` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    token: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
}
