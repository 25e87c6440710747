//! What the admin API shows: `/status`, the tenants' views, and the text the CLI prints from
//! them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::*;
use crate::host::HostHandle;
use crate::processor::owned::PartitionState;

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
    pub positions_error: Option<String>,
    /// Why the event hub's consumer cannot run now (a consumer group that does not exist).
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
async fn hub_status(host: &HostHandle, hub: &crate::host::HubHandle) -> HubStatus {
    let (positions, positions_error) = host.positions(hub).await;
    HubStatus {
        event_hub: hub.event_hub.clone(),
        consumer_group: hub.consumer_group.clone(),
        tenant: hub.tenant.clone(),
        plugin: hub.current(),
        swaps: hub.history(),
        partitions: host
            .owned()
            .of(&hub.event_hub, &hub.consumer_group)
            .iter()
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

pub(super) async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize_global_read(&state, &headers) {
        return *refused;
    }
    let host = &state.host;
    let snap = host.stats().snapshot();
    let mut event_hubs = Vec::new();
    for hub in host.hubs() {
        event_hubs.push(hub_status(host, hub).await);
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
    let mut event_hubs = Vec::new();
    for hub in host.hubs().iter().filter(|h| h.tenant == tenant.name) {
        event_hubs.push(hub_status(host, hub).await);
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

pub(super) async fn tenants(State(state): State<AppState>, headers: HeaderMap) -> Response {
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

pub(super) async fn tenant(
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
