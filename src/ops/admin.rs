//! The admin HTTP endpoint (`[admin] listen`, 127.0.0.1 by default):
//!
//! | call | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text format (names: [`super::metrics`]) |
//! | `GET /status` | JSON: per direction state, positions, lag, last error; the producer |
//! | `POST /pause[?from=ZONE]` | pause applying (every direction, or the one from ZONE) at the next transaction boundary |
//! | `POST /resume[?from=ZONE]` | resume |
//!
//! With `[admin] tls_cert` and `tls_key` the endpoint speaks HTTPS only.
//!
//! Mutating calls need `Authorization: Bearer <token>` with the token of `[admin]`
//! (`token_env`, `token_file` or `token`, compared in constant time); without a
//! configured token they are refused. Every mutating call, refused or not, is written
//! to the audit log ([`super::audit`]) before it is answered.

use super::audit;
use crate::telemetry::status::registry;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    token: Option<Arc<str>>,
    audit: Arc<PathBuf>,
}

#[derive(serde::Deserialize)]
struct Which {
    from: Option<String>,
}

/// Serves the admin endpoint on `listener` until `shutdown`: over HTTPS with `tls`
/// (`[admin] tls_cert`), plain HTTP without.
pub async fn serve(
    listener: tokio::net::TcpListener,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    token: Option<String>,
    audit_log: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: crate::pipeline::Shutdown,
) -> std::io::Result<()> {
    let state = AppState {
        prometheus,
        token: token.map(Arc::from),
        audit: Arc::new(audit_log),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/pause", post(|s, c, h, q| set_paused(s, c, h, q, true)))
        .route("/resume", post(|s, c, h, q| set_paused(s, c, h, q, false)))
        .with_state(state);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, service)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
    };
    // each connection's handshake runs in its own task (a client that never
    // completes one holds up nobody), bounded by the acceptor's timeout
    let handle = axum_server::Handle::new();
    let stop = handle.clone();
    tokio::spawn(async move {
        shutdown.wait().await;
        stop.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    axum_server::from_tcp_rustls(
        listener.into_std()?,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .handle(handle)
    .serve(service)
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
        Some(g) if bool::from(subtle::ConstantTimeEq::ct_eq(g.as_bytes(), token.as_bytes())) => Ok(()),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong bearer token\n".into())),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <token> ([admin] token)\n".into(),
        )),
    }
}

/// Writes the audit line of a call; an answer for the caller if that failed.
fn audited(
    s: &AppState,
    from: SocketAddr,
    action: &str,
    target: String,
    outcome: String,
) -> Result<(), (StatusCode, String)> {
    let e = audit::Entry::new(action, "admin-api", from.to_string(), target, outcome);
    audit::record(&s.audit, &e).map_err(|what| {
        tracing::error!("{what}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("not done: it could not be audited ({what})\n"),
        )
    })
}

async fn set_paused(
    State(s): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<Which>,
    pause: bool,
) -> Response {
    let action = if pause { "pause" } else { "resume" };
    let target = q.from.clone().unwrap_or_else(|| "every direction".into());
    if let Err((code, why)) = authorized(&s, &headers) {
        if let Err(r) = audited(&s, from, action, target, format!("refused: {}", why.trim_end())) {
            return r.into_response();
        }
        return (code, why).into_response();
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
    let zones: Vec<String> = dirs.iter().map(|d| d.from_zone.clone()).collect();
    if let Err(r) = audited(&s, from, action, zones.join(","), "ok".into()) {
        return r.into_response();
    }
    let mut changed = Vec::new();
    for d in dirs {
        d.set_paused(pause);
        changed.push(d.from_zone.clone());
    }
    tracing::info!(directions = ?changed, pause, "admin request");
    Json(serde_json::json!({ "paused": pause, "from_zones": changed })).into_response()
}
