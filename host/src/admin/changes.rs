//! What the admin API changes: swap (an upload, a registry reference or an operator's host
//! path), rollback and resume, each authorised for the operator or the event hub's tenant.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::*;
use crate::host::SwapError;

/// The JSON body of a swap request that names its component instead of carrying it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    /// The new component: a registry reference `oci://host/repo:tag` (or `@sha256:…`; a
    /// tenant's within its granted registries), or a path inside `[admin] plugin_dirs` (the
    /// operator's token only).
    pub plugin: String,
    /// Needed when the event hub is consumed with several consumer groups.
    pub consumer_group: Option<String>,
    /// Sample events (.jsonl) the new version must handle without a failure first (besides
    /// the event hub's [eventhub.swap] replay_events): a path inside `[admin] plugin_dirs`.
    pub replay: Option<String>,
}

/// The query of a swap request: the consumer group and the plugin's name for an upload.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapQuery {
    pub consumer_group: Option<String>,
    /// The name the uploaded version goes by (logs, metrics); default: the multipart file
    /// name's stem, or `plugin`.
    pub name: Option<String>,
}

pub(super) async fn swap(
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
    pub consumer_group: Option<String>,
}

/// A change (rollback, resume) checked before its handler runs: the caller's token for the
/// event hub of the path (and the consumer group of the body), and the body, empty or
/// `{"consumer_group": ...}`.
pub(super) struct GroupChange {
    consumer_group: Option<String>,
}

impl axum::extract::FromRequest<AppState> for GroupChange {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let Path(params) = Path::<std::collections::HashMap<String, String>>::from_request_parts(
            &mut parts, state,
        )
        .await
        .map_err(IntoResponse::into_response)?;
        let event_hub = params.get("event_hub").cloned().unwrap_or_default();
        let headers = parts.headers.clone();
        let request = axum::extract::Request::from_parts(parts, body);
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let parsed = if body.is_empty() {
            Ok(RollbackRequest::default())
        } else {
            serde_json::from_slice::<RollbackRequest>(&body)
        };
        let group = parsed
            .as_ref()
            .ok()
            .and_then(|r| r.consumer_group.as_deref());
        if let Err((status, why)) = authorize(state, &headers, &event_hub, group) {
            return Err(error(status, why));
        }
        match parsed {
            Ok(request) => Ok(GroupChange {
                consumer_group: request.consumer_group,
            }),
            Err(err) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("the body must be empty or {{\"consumer_group\": \"...\"}}: {err}"),
            )),
        }
    }
}

pub(super) async fn resume(
    State(state): State<AppState>,
    Path((event_hub, partition)): Path<(String, String)>,
    change: GroupChange,
) -> Response {
    let group = change.consumer_group.as_deref();
    match state.host.resume(&event_hub, group, &partition) {
        Ok(()) => Json(serde_json::json!({
            "event_hub": event_hub,
            "partition": partition,
            "resumed": true
        }))
        .into_response(),
        Err(err) => swap_error(err),
    }
}

pub(super) async fn rollback(
    State(state): State<AppState>,
    Path(event_hub): Path<String>,
    change: GroupChange,
) -> Response {
    let group = change.consumer_group.as_deref();
    match state.host.rollback(&event_hub, group).await {
        Ok(record) => Json(record).into_response(),
        Err(err) => swap_error(err),
    }
}
