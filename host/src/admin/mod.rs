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

pub mod client;
pub mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::host::{HostHandle, SwapError};
use crate::processor::stats::PartitionState;

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
    mut stop: watch::Receiver<bool>,
) -> Result<AdminServer, AdminError> {
    // (`stop` ends the accept loop and every open connection.)
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
            let _ = stop.wait_for(|s| *s).await;
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

/// `/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub instance_id: String,
    pub uptime_s: f64,
    pub handled: u64,
    pub failures: u64,
    pub dead_lettered: u64,
    pub checkpoints: u64,
    pub swaps: u64,
    pub event_hubs: Vec<HubStatus>,
    /// The counters once a second over the last ten minutes, oldest first.
    pub history: Vec<crate::host::Sample>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HubStatus {
    pub event_hub: String,
    pub consumer_group: String,
    /// The tenant the event hub's processing belongs to.
    #[serde(default)]
    pub tenant: String,
    pub plugin: crate::host::PluginVersion,
    pub swaps: Vec<crate::host::SwapRecord>,
    /// Partitions this host owns now.
    pub partitions: Vec<PartitionStatus>,
    /// Every partition of the event hub: owner, checkpoint, last enqueued event, lag.
    pub positions: Vec<crate::host::PartitionPosition>,
    /// What could not be read for `positions` (they are partial then).
    #[serde(default)]
    pub positions_error: Option<String>,
    /// Why the event hub's consumer cannot run now (a consumer group that does not exist).
    #[serde(default)]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub partition: String,
    /// `running`, `retrying`, `halted`, `paused`, `store-down` or `held`.
    pub state: String,
}

fn state_name(state: PartitionState) -> &'static str {
    match state {
        PartitionState::Running => "running",
        PartitionState::Retrying => "retrying",
        PartitionState::Halted => "halted",
        PartitionState::Paused => "paused",
        PartitionState::StoreDown => "store-down",
        PartitionState::Held => "held",
    }
}

/// One event hub's status, as `/status` and `/v1/tenants` show it.
async fn hub_status(
    host: &HostHandle,
    hub: &crate::host::HubHandle,
    snap: &crate::processor::stats::Snapshot,
) -> HubStatus {
    let (positions, positions_error) = host.positions(hub).await;
    HubStatus {
        event_hub: hub.event_hub.clone(),
        consumer_group: hub.consumer_group.clone(),
        tenant: hub.tenant.clone(),
        plugin: hub.current(),
        swaps: hub.history(),
        partitions: snap
            .owned
            .iter()
            .filter(|o| o.event_hub == hub.event_hub && o.consumer_group == hub.consumer_group)
            .map(|o| PartitionStatus {
                partition: o.partition.clone(),
                state: state_name(o.state).into(),
            })
            .collect(),
        positions,
        positions_error,
        problem: host.stats().problem(&hub.event_hub, &hub.consumer_group),
    }
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize_global_read(&state, &headers) {
        return *refused;
    }
    let host = &state.host;
    let snap = host.stats().snapshot();
    let mut event_hubs = Vec::new();
    for hub in host.hubs() {
        event_hubs.push(hub_status(host, hub, &snap).await);
    }
    Json(Status {
        instance_id: host.instance_id().to_string(),
        uptime_s: host.started().elapsed().unwrap_or_default().as_secs_f64(),
        handled: snap.handled,
        failures: snap.failures,
        dead_lettered: snap.dead_lettered,
        checkpoints: snap.checkpoints,
        swaps: host
            .stats()
            .swaps
            .load(std::sync::atomic::Ordering::Relaxed),
        event_hubs,
        history: host.history(),
    })
    .into_response()
}

/// `/v1/tenants/{tenant}`: a tenant's limits, usage and event hubs.
#[derive(Debug, Serialize, Deserialize)]
pub struct TenantStatus {
    pub name: String,
    pub limits: TenantLimitsView,
    pub usage: crate::tenant::UsageSnapshot,
    pub event_hubs: Vec<HubStatus>,
}

/// A tenant's limits (absent: unlimited).
#[derive(Debug, Serialize, Deserialize)]
pub struct TenantLimitsView {
    pub memory_bytes: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_in_flight: Option<u32>,
    pub events_per_sec: Option<f64>,
    pub mb_per_sec: Option<f64>,
}

async fn tenant_status(host: &HostHandle, tenant: &crate::tenant::Tenant) -> TenantStatus {
    let snap = host.stats().snapshot();
    let mut event_hubs = Vec::new();
    for hub in host.hubs().iter().filter(|h| h.tenant == tenant.name) {
        event_hubs.push(hub_status(host, hub, &snap).await);
    }
    let l = &tenant.limits;
    TenantStatus {
        name: tenant.name.clone(),
        limits: TenantLimitsView {
            memory_bytes: l.memory_bytes,
            timeout_ms: l.timeout.map(|t| t.as_millis() as u64),
            max_in_flight: l.max_in_flight,
            events_per_sec: l.events_per_sec,
            mb_per_sec: l.mb_per_sec,
        },
        usage: tenant.usage(),
        event_hubs,
    }
}

/// Reads of tenants: open while no tenant has a token; then the operator reads every tenant
/// and a tenant's token its own.
fn tenant_reader(state: &AppState, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    match caller(state, headers) {
        Caller::Anonymous if !state.tenant_tokens.is_empty() => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "tenants have admin tokens here, so reads need one: send `Authorization: Bearer \
             <token>` (your tenant's token, or the operator's)",
        ))),
        Caller::Anonymous => Ok(Caller::Operator),
        who => Ok(who),
    }
}

async fn tenants(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = match tenant_reader(&state, &headers) {
        Ok(who) => who,
        Err(refused) => return *refused,
    };
    let mut out = Vec::new();
    for tenant in state.host.tenants().iter() {
        if who == Caller::Operator || who == Caller::Tenant(tenant.name.clone()) {
            out.push(tenant_status(&state.host, tenant).await);
        }
    }
    Json(out).into_response()
}

async fn tenant(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = match tenant_reader(&state, &headers) {
        Ok(who) => who,
        Err(refused) => return *refused,
    };
    if let Caller::Tenant(own) = &who {
        if *own != name {
            return error(
                StatusCode::FORBIDDEN,
                format!("this is tenant {own}'s token; it reads only /v1/tenants/{own}"),
            );
        }
    }
    match state.host.tenants().get(&name) {
        Some(tenant) => Json(tenant_status(&state.host, tenant).await).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no tenant named `{name}`")),
    }
}

/// The JSON body of a swap request that names its component instead of carrying it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    /// The new component: a registry reference `oci://host/repo:tag` (or `@sha256:…`; a
    /// tenant's within its granted registries), or a path inside `[admin] plugin_dirs` (the
    /// operator's token only).
    pub plugin: String,
    /// Needed when the event hub is consumed with several consumer groups.
    #[serde(default)]
    pub consumer_group: Option<String>,
    /// Sample events (.jsonl) the new version must handle without a failure first (besides
    /// the event hub's [eventhub.swap] replay_events): a path inside `[admin] plugin_dirs`.
    #[serde(default)]
    pub replay: Option<String>,
}

/// The query of a swap request: the consumer group and the plugin's name for an upload.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapQuery {
    #[serde(default)]
    pub consumer_group: Option<String>,
    /// The name the uploaded version goes by (logs, metrics); default: the multipart file
    /// name's stem, or `plugin`.
    #[serde(default)]
    pub name: Option<String>,
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

async fn swap(
    State(state): State<AppState>,
    Path(event_hub): Path<String>,
    query: Result<axum::extract::Query<SwapQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let query = match query {
        Ok(axum::extract::Query(query)) => query,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the query may name only consumer_group and name: {err}"),
            )
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let request = match mime.as_str() {
        "application/json" => swap_by_reference(&state, &event_hub, query, &headers, body).await,
        "application/wasm" | "application/octet-stream" | "multipart/form-data" => {
            swap_upload(&state, &event_hub, query, &headers, body, &content_type).await
        }
        other => Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "a swap request is application/wasm (the component), multipart/form-data (parts \
                 `plugin` and `replay`) or application/json (a registry reference, or for the \
                 operator a path in [admin] plugin_dirs); not {other:?}"
            ),
        )),
    };
    let (group, component, replay) = match request {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    match state
        .host
        .swap(&event_hub, group.as_deref(), component, replay)
        .await
    {
        Ok(record) => Json(record).into_response(),
        Err(err) => swap_error(err),
    }
}

/// A swap request, read: its consumer group, the component, and the replay events.
type SwapInput = (
    Option<String>,
    crate::artifact::Component,
    Option<crate::replay::EventsSource>,
);

/// A swap that carries its component: the caller is checked before a byte of the body is read.
async fn swap_upload(
    state: &AppState,
    event_hub: &str,
    query: SwapQuery,
    headers: &HeaderMap,
    body: axum::body::Body,
    content_type: &str,
) -> Result<SwapInput, Response> {
    let group = query.consumer_group;
    authorize(state, headers, event_hub, group.as_deref()).map_err(|(s, why)| error(s, why))?;
    state
        .host
        .find(event_hub, group.as_deref())
        .map_err(swap_error)?;
    let Ok(_slot) = state.uploads.clone().try_acquire_owned() else {
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_UPLOADS} uploads are being read already; try again when one has ended"),
        ));
    };
    let stream = body.into_data_stream();
    let uploaded = if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = multer::parse_boundary(content_type).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("the multipart content type has no usable boundary: {e}"),
            )
        })?;
        upload::read_multipart(stream, &boundary, state.limits).await
    } else {
        upload::read_component(stream, state.limits)
            .await
            .map(|plugin| upload::Uploaded {
                plugin,
                ..Default::default()
            })
    }
    .map_err(|e| error(e.status(), e.to_string()))?;
    let name = query
        .name
        .or_else(|| {
            uploaded.file_name.as_deref().map(|f| {
                std::path::Path::new(f)
                    .file_stem()
                    .map_or("plugin".into(), |s| s.to_string_lossy().into_owned())
            })
        })
        .unwrap_or_else(|| "plugin".into());
    let component = crate::artifact::Component::new(&name, "upload", uploaded.plugin);
    let replay = uploaded
        .replay
        .map(|text| crate::replay::EventsSource::Text(text.into()));
    Ok((group, component, replay))
}

/// A swap that names its component: a registry reference (a tenant's within its grants), or
/// a host path inside `[admin] plugin_dirs`, for the operator only.
async fn swap_by_reference(
    state: &AppState,
    event_hub: &str,
    query: SwapQuery,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<SwapInput, Response> {
    let limits = upload::UploadLimits {
        component: MAX_JSON_BODY,
        ..state.limits
    };
    let read = upload::read_component(body.into_data_stream(), limits).await;
    let parsed = match read {
        Ok(bytes) => serde_json::from_slice::<SwapRequest>(&bytes).map_err(|e| e.to_string()),
        Err(upload::UploadError::TooLarge { .. }) => Err(format!(
            "a JSON swap request is at most {MAX_JSON_BODY} bytes; send a component as \
             application/wasm or multipart instead"
        )),
        Err(err) => Err(err.to_string()),
    };
    let group = parsed
        .as_ref()
        .ok()
        .and_then(|r| r.consumer_group.clone())
        .or(query.consumer_group);
    authorize(state, headers, event_hub, group.as_deref()).map_err(|(s, why)| error(s, why))?;
    state
        .host
        .find(event_hub, group.as_deref())
        .map_err(swap_error)?;
    let request = parsed.map_err(|err| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be JSON {{\"plugin\": \"<path in [admin] plugin_dirs>\", \
                 \"consumer_group\": \"<optional>\"}} (or the component itself, Content-Type: \
                 application/wasm, or multipart with parts `plugin` and `replay`): {err}"
            ),
        )
    })?;
    let who = caller(state, headers);
    let from_registry = request.plugin.starts_with(crate::registry::SCHEME);
    // Host paths (the plugin's, or the replay events') are the operator's only.
    if let Caller::Tenant(name) = &who {
        if !from_registry || request.replay.is_some() {
            return Err(error(
                StatusCode::FORBIDDEN,
                format!(
                    "tenant {name} cannot name a path on the host: upload the component's bytes \
                     (Content-Type: application/wasm, or multipart with parts `plugin` and \
                     `replay`; `hubwasm plugin swap FILE` does), or name a registry reference \
                     granted to it"
                ),
            ));
        }
    }
    let replay = match request.replay.as_deref() {
        Some(path) => Some(
            read_host_file(
                state,
                PathBuf::from(path),
                crate::files::Bound::events(state.limits.replay),
            )
            .await?,
        ),
        None => None,
    }
    .map(|text| crate::replay::EventsSource::Text(text.into()));
    if from_registry {
        let tenant = match &who {
            Caller::Tenant(name) => Some(name.as_str()),
            _ => None,
        };
        let component = state
            .host
            .pull(&request.plugin, tenant)
            .await
            .map_err(|err| {
                use crate::registry::RegistryError as E;
                let status = match err {
                    E::BadReference { .. } => StatusCode::BAD_REQUEST,
                    E::NotGranted { .. } => StatusCode::FORBIDDEN,
                    E::Unreachable { .. } => StatusCode::BAD_GATEWAY,
                    E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    E::NotAComponent { .. } | E::Digest { .. } | E::Push { .. } => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                };
                error(status, format!("{err}; the running version is unchanged"))
            })?;
        return Ok((group, component, replay));
    }
    let path = PathBuf::from(&request.plugin);
    let plugin = read_host_file(
        state,
        path.clone(),
        crate::files::Bound::component(state.limits.component),
    )
    .await?;
    let name = path
        .file_stem()
        .map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let component = crate::artifact::Component::new(&name, path.display().to_string(), plugin);
    Ok((group, component, replay))
}

/// A file the operator named, read inside `[admin] plugin_dirs` (regular, bounded, confined).
async fn read_host_file(
    state: &AppState,
    path: PathBuf,
    bound: crate::files::Bound,
) -> Result<Vec<u8>, Response> {
    let dirs = state.plugin_dirs.clone();
    let read =
        tokio::task::spawn_blocking(move || crate::files::read_confined(&path, bound, &dirs)).await;
    match read {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) => {
            let status = match err {
                crate::files::FileError::Outside { .. } | crate::files::FileError::NoDirs => {
                    StatusCode::FORBIDDEN
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            Err(error(
                status,
                format!("{err}; the running version is unchanged"),
            ))
        }
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the file failed",
        )),
    }
}

fn swap_error(err: SwapError) -> Response {
    let status = match err {
        SwapError::UnknownHub { .. } | SwapError::AmbiguousGroup { .. } => StatusCode::NOT_FOUND,
        SwapError::NothingToRollBack { .. } | SwapError::NotHalted { .. } => StatusCode::CONFLICT,
        SwapError::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        SwapError::Refused { .. }
        | SwapError::ReplayFailed { .. }
        | SwapError::ReplayUnavailable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, err.to_string())
}

/// The body of a rollback request (all optional).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(default)]
    pub consumer_group: Option<String>,
}

/// A change (rollback, resume) checked: the token, then an optional
/// `{"consumer_group": ...}` body.
fn group_change(
    state: &AppState,
    headers: &HeaderMap,
    event_hub: &str,
    body: &[u8],
) -> Result<RollbackRequest, Box<Response>> {
    let parsed = if body.is_empty() {
        Ok(RollbackRequest::default())
    } else {
        serde_json::from_slice::<RollbackRequest>(body)
    };
    let group = parsed
        .as_ref()
        .ok()
        .and_then(|r| r.consumer_group.as_deref());
    if let Err((status, why)) = authorize(state, headers, event_hub, group) {
        return Err(Box::new(error(status, why)));
    }
    parsed.map_err(|err| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the body must be empty or {{\"consumer_group\": \"...\"}}: {err}"),
        ))
    })
}

async fn resume(
    State(state): State<AppState>,
    Path((event_hub, partition)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request = match group_change(&state, &headers, &event_hub, &body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    match state
        .host
        .resume(&event_hub, request.consumer_group.as_deref(), &partition)
    {
        Ok(()) => Json(serde_json::json!({
            "event_hub": event_hub,
            "partition": partition,
            "resumed": true
        }))
        .into_response(),
        Err(err) => swap_error(err),
    }
}

async fn rollback(
    State(state): State<AppState>,
    Path(event_hub): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request = match group_change(&state, &headers, &event_hub, &body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    match state
        .host
        .rollback(&event_hub, request.consumer_group.as_deref())
        .await
    {
        Ok(record) => Json(record).into_response(),
        Err(err) => swap_error(err),
    }
}

/// `hubwasm status --admin --tenant NAME`: a tenant's limits and usage as lines.
pub fn tenant_lines(t: &TenantStatus) -> Vec<String> {
    let (l, u) = (&t.limits, &t.usage);
    let limit = |v: Option<String>| v.map_or("unlimited".to_string(), |v| format!("limit {v}"));
    let mut lines = vec![
        format!("tenant {}", t.name),
        format!(
            "  now: {:.0} events/s ({}), {:.2} MB/s ({}), {:.2} cores in plugin calls",
            u.events_per_sec,
            limit(l.events_per_sec.map(|r| format!("{r}"))),
            u.mb_per_sec,
            limit(l.mb_per_sec.map(|r| format!("{r}"))),
            u.cpu_share
        ),
        format!(
            "  memory: peak {} bytes per instance ({}); calls: {} in flight ({}), timeout {}",
            u.memory_peak_bytes,
            limit(l.memory_bytes.map(|m| m.to_string())),
            u.in_flight,
            limit(l.max_in_flight.map(|m| m.to_string())),
            l.timeout_ms
                .map_or("default".to_string(), |t| format!("{t} ms"))
        ),
        format!(
            "  since start: {} calls, {} events, {} bytes, {} failures, {:.1} s in calls; \
             throttled {:.1} s over {} calls; {} storm pauses ({:.1} s)",
            u.calls,
            u.events,
            u.bytes,
            u.failures,
            u.busy_secs,
            u.throttled_secs,
            u.throttled_calls,
            u.storms,
            u.storm_paused_secs
        ),
    ];
    for hub in &t.event_hubs {
        lines.push(format!(
            "  event hub {} (consumer group {}): plugin {} {}",
            hub.event_hub,
            hub.consumer_group,
            hub.plugin.name,
            &hub.plugin.digest[..hub.plugin.digest.len().min(12)]
        ));
    }
    lines
}

/// `hubwasm status --admin`: the status as lines for a terminal.
pub fn status_lines(status: &Status) -> Vec<String> {
    let mut lines = vec![format!(
        "instance {} (up {:.0} s): handled {}, failures {}, dead-lettered {}, checkpoints {}, swaps {}",
        status.instance_id,
        status.uptime_s,
        status.handled,
        status.failures,
        status.dead_lettered,
        status.checkpoints,
        status.swaps
    )];
    for hub in &status.event_hubs {
        lines.push(format!(
            "event hub {} (consumer group {}): plugin {} {} ({})",
            hub.event_hub,
            hub.consumer_group,
            hub.plugin.name,
            &hub.plugin.digest[..hub.plugin.digest.len().min(12)],
            hub.plugin.path
        ));
        for p in &hub.positions {
            let here = hub
                .partitions
                .iter()
                .find(|o| o.partition == p.partition)
                .map(|o| format!(", here: {}", o.state))
                .unwrap_or_default();
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            lines.push(format!(
                "  partition {}: owner {}, checkpoint {}, last enqueued {}, lag {}{here}",
                p.partition,
                p.owner.as_deref().unwrap_or("-"),
                show(p.checkpoint),
                show(p.last_enqueued),
                show(p.lag)
            ));
        }
        if let Some(problem) = &hub.positions_error {
            lines.push(format!("  (partial: {problem})"));
        }
        if let Some(problem) = &hub.problem {
            lines.push(format!("  NOT RUNNING: {problem}"));
        }
        for swap in &hub.swaps {
            lines.push(format!(
                "  {} at {} ms: {} {} -> {} {}",
                swap.reason,
                swap.at_ms,
                swap.from.name,
                &swap.from.digest[..swap.from.digest.len().min(12)],
                swap.to.name,
                &swap.to.digest[..swap.to.digest.len().min(12)]
            ));
        }
    }
    lines
}
