//! The admin HTTP endpoint (`[admin] listen`, 127.0.0.1 by default):
//!
//! | call | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text format (names: [`super::metrics`]) |
//! | `GET /status` | JSON: per direction state, positions, lag, last error; the producer |
//! | `POST /pause[?from=ZONE]` | pause applying (every direction, or the one from ZONE) at the next transaction boundary |
//! | `POST /resume[?from=ZONE]` | resume |
//!
//! Mutating calls need `Authorization: Bearer <token>` with the token of `[admin]`
//! (`token_env`, `token_file` or `token`); without a configured token they are refused.

use crate::telemetry::status::registry;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    token: Option<Arc<str>>,
}

#[derive(serde::Deserialize)]
struct Which {
    from: Option<String>,
}

/// Serves the admin endpoint on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    token: Option<String>,
    shutdown: crate::pipeline::Shutdown,
) -> std::io::Result<()> {
    let state = AppState {
        prometheus,
        token: token.map(Arc::from),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/pause", post(|s, h, q| set_paused(s, h, q, true)))
        .route("/resume", post(|s, h, q| set_paused(s, h, q, false)))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    ([("content-type", "text/plain; version=0.0.4")], s.prometheus.render()).into_response()
}

async fn status() -> Json<serde_json::Value> {
    Json(registry().status_json())
}

fn authorized(s: &AppState, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let Some(token) = &s.token else {
        return Err((
            StatusCode::FORBIDDEN,
            "no admin token configured ([admin] token_env / token_file): mutating calls are disabled\n".into(),
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong bearer token\n".into())),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <token> ([admin] token)\n".into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn set_paused(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<Which>, pause: bool) -> Response {
    if let Err(e) = authorized(&s, &headers) {
        return e.into_response();
    }
    let dirs: Vec<_> = registry()
        .directions()
        .into_iter()
        .filter(|d| q.from.as_deref().is_none_or(|f| d.from_zone == f))
        .collect();
    if dirs.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no direction from zone {:?} in this daemon\n",
                q.from.unwrap_or_default()
            ),
        )
            .into_response();
    }
    let mut changed = Vec::new();
    for d in dirs {
        d.set_paused(pause);
        changed.push(d.from_zone.clone());
    }
    tracing::info!(directions = ?changed, pause, "admin request");
    Json(serde_json::json!({ "paused": pause, "from_zones": changed })).into_response()
}
