//! The admin API: HTTP on 127.0.0.1 by default, off unless configured (`[admin]` or
//! `hubwasm run --admin ADDR`).
//!
//! - `GET /`: the status page (partitions, rates, plugin versions and swaps), polling `/status`.
//! - `GET /healthz`: the process answers. `GET /readyz`: every event hub's consumer runs.
//! - `GET /status`: JSON: event hubs, their plugin versions and swap history, owned partitions
//!   and their states, the counters.
//! - `GET /metrics`: Prometheus text.
//! - `POST /v1/event-hubs/{event_hub}/swap[?consumer_group=G&name=N]`: load, check and swap
//!   in a new plugin version, which the request carries: an `application/wasm` body (the
//!   component), or `multipart/form-data` with parts `plugin` (the component) and `replay`
//!   (.jsonl events it must handle first), or JSON `{"plugin": "oci://host/repo:tag"}` (a
//!   tenant's within its granted registries; resolved and pinned to its digest when accepted).
//!   Only the operator's token may send JSON `{"plugin": "<path>", "replay": "<path>"}` naming
//!   files inside `[admin] plugin_dirs`; a tenant never names a host path. Bodies are bounded (`[admin] max_component_bytes`,
//!   `max_replay_bytes`) and cut off when they stall. `POST /v1/event-hubs/{event_hub}/rollback`:
//!   return to the version the last swap replaced.
//!   `POST /v1/event-hubs/{event_hub}/partitions/{partition}/resume`: a partition the `halt`
//!   policy stopped retries its event with a fresh count. Changes need `Authorization: Bearer
//!   <token>` (the token from `$HUBWASM_ADMIN_TOKEN`, or the variable `token_env` names); with
//!   no token configured, changes are refused.
//! - `GET /v1/tenants`, `GET /v1/tenants/{tenant}`: tenants, their limits, usage against the
//!   limits (events/s, MB/s, CPU, memory), throttling, storms and failures, and their event hubs.
//!
//! Tenant tokens (`[[tenant]] admin_token_env`) are scoped: one reads only its own tenant and
//! changes only its own event hubs. Once any tenant has a token, every read needs a token too:
//! `/status` and `/metrics` (which span all tenants) the operator's, `/v1/tenants/...` either.

mod changes;
pub mod client;
mod status;
pub mod upload;

use changes::{resume, rollback, swap};
pub use changes::{RollbackRequest, SwapQuery, SwapRequest};
use status::{status, tenant, tenants};
pub use status::{HubStatus, PartitionStatus, Status, TenantLimitsView, TenantStatus};

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::host::HostHandle;

/// How the admin API is served.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub listen: SocketAddr,
    /// The operator's bearer token (every read and change); `None` refuses changes but a
    /// tenant's own.
    pub token: Option<String>,
    /// Each tenant's token (tenant, token): its own tenant and event hubs only.
    pub tenant_tokens: Vec<(String, String)>,
    /// Directories the operator's swap requests may name host paths in.
    pub plugin_dirs: Vec<PathBuf>,
    pub max_component_bytes: u64,
    pub max_replay_bytes: u64,
    pub upload_idle_timeout: std::time::Duration,
    pub upload_timeout: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr} for the admin API: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Connections served at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Uploads read at once; more are refused (429) until one ends.
const MAX_UPLOADS: usize = 2;
/// The most of a JSON swap request read.
const MAX_JSON_BODY: u64 = 64 << 10;

#[derive(Clone)]
struct AppState {
    host: HostHandle,
    token: Option<String>,
    tenant_tokens: std::sync::Arc<Vec<(String, String)>>,
    plugin_dirs: std::sync::Arc<Vec<PathBuf>>,
    limits: upload::UploadLimits,
    uploads: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Who sent a request, by its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    Operator,
    Tenant(String),
    Anonymous,
}

/// Compared in constant time (a token's length is not secret).
fn same_token(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn caller(state: &AppState, headers: &HeaderMap) -> Caller {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() {
        return Caller::Anonymous;
    }
    if state.token.as_deref().is_some_and(|t| same_token(given, t)) {
        return Caller::Operator;
    }
    state
        .tenant_tokens
        .iter()
        .find(|(_, t)| same_token(given, t))
        .map_or(Caller::Anonymous, |(name, _)| Caller::Tenant(name.clone()))
}

/// Reads of what spans every tenant (`/status`, `/metrics`): open while no tenant has a token,
/// then the operator's only.
fn authorize_global_read(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if state.tenant_tokens.is_empty() {
        return Ok(());
    }
    match caller(state, headers) {
        Caller::Operator => Ok(()),
        Caller::Tenant(name) => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            format!(
                "this is tenant {name}'s token, and this view spans every tenant: read \
                 /v1/tenants/{name} instead"
            ),
        ))),
        Caller::Anonymous => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "tenants have admin tokens here, so reads need one: send `Authorization: Bearer \
             <token>` (the operator's token for this view)",
        ))),
    }
}

/// A running admin server; it stops when the `stop` given to [`serve`] turns true.
pub struct AdminServer {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Serve the admin API for `host` until `stop` turns true.
pub async fn serve(
    options: AdminOptions,
    host: HostHandle,
    stop: impl Into<crate::shutdown::Shutdown>,
) -> Result<AdminServer, AdminError> {
    // (`stop` ends the accept loop and every open connection.)
    let mut stop: crate::shutdown::Shutdown = stop.into();
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| AdminError::Bind {
            addr: options.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| AdminError::Bind {
        addr: options.listen,
        source,
    })?;
    let app = router(AppState {
        host,
        plugin_dirs: std::sync::Arc::new(options.plugin_dirs),
        limits: upload::UploadLimits {
            component: options.max_component_bytes,
            replay: options.max_replay_bytes,
            idle: options.upload_idle_timeout,
            total: options.upload_timeout,
        },
        uploads: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_UPLOADS)),
        token: options.token.filter(|t| !t.is_empty()),
        tenant_tokens: std::sync::Arc::new(
            options
                .tenant_tokens
                .into_iter()
                .filter(|(_, t)| !t.is_empty())
                .collect(),
        ),
    });
    let task = tokio::spawn(async move {
        // Every client is hostile until checked: at most MAX_CONNECTIONS at once (more are
        // closed at once), and a client has HEADER_TIMEOUT to send its request's head.
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut connections = tokio::task::JoinSet::new();
        let stopped = async move {
            stop.wait().await;
        };
        tokio::pin!(stopped);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "Admin API: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = &mut stopped => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    limit = MAX_CONNECTIONS,
                    "Admin API: too many connections; closing a new one"
                );
                drop(stream);
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            connections.spawn(async move {
                let _slot = slot;
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                if let Err(err) = served {
                    tracing::debug!(error = %err, "Admin API connection ended");
                }
            });
        }
        connections.shutdown().await;
    });
    Ok(AdminServer { local_addr, task })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/tenants", get(tenants))
        .route("/v1/tenants/{tenant}", get(tenant))
        .route("/v1/event-hubs/{event_hub}/swap", post(swap))
        .route("/v1/event-hubs/{event_hub}/rollback", post(rollback))
        .route(
            "/v1/event-hubs/{event_hub}/partitions/{partition}/resume",
            post(resume),
        )
        .with_state(state)
}

/// The status page: one self-contained HTML file that polls `/status`.
const PAGE: &str = include_str!("page.html");

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything the page needs is inline; nothing is loaded from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.host.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {}\n",
                state
                    .host
                    .hubs()
                    .iter()
                    .find_map(|h| state.host.stats().problem(&h.event_hub, &h.consumer_group))
                    .unwrap_or_else(|| "an event hub's consumer is not running".into())
            ),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize_global_read(&state, &headers) {
        return *refused;
    }
    // Lag comes from Event Hubs and the store (cached for two seconds).
    for hub in state.host.hubs() {
        let _ = state.host.positions(hub).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.host.stats().prometheus_text(),
    )
        .into_response()
}

/// An error answer: `{"error": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// Changes of an event hub (and consumer group) need the operator's token, or the token of
/// the tenant the event hub belongs to.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    event_hub: &str,
    group: Option<&str>,
) -> Result<(), (StatusCode, String)> {
    match caller(state, headers) {
        Caller::Operator => Ok(()),
        Caller::Tenant(name) => match state.host.find(event_hub, group) {
            Ok(hub) if hub.tenant == name => Ok(()),
            Ok(hub) => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "this is tenant {name}'s token; event hub {event_hub} (consumer group {}) \
                     belongs to tenant {}",
                    hub.consumer_group, hub.tenant
                ),
            )),
            // Unknown or ambiguous: the handler says which, as for the operator.
            Err(_) => Ok(()),
        },
        Caller::Anonymous if state.token.is_none() && state.tenant_tokens.is_empty() => Err((
            StatusCode::FORBIDDEN,
            "changes are disabled: start the host with $HUBWASM_ADMIN_TOKEN set (or the \
             variable [admin] token_env names) to allow them"
                .into(),
        )),
        Caller::Anonymous => Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the \
             host's admin token (or your tenant's)"
                .into(),
        )),
    }
}
