//! A plugin version as it travels: the component's bytes and their SHA-256. A swap accepts a
//! component (uploaded, read from a permitted host directory, or pulled from a registry),
//! stores it in the consumer group's checkpoint store under its digest beside the version
//! record, and every other host of the group fetches it from there by that digest and checks
//! it before running it. No host ever reads another host's path, and no shared disk is needed.

use std::sync::Arc;

use crate::checkpoint::{GroupName, Store};

/// A component and what identifies it.
#[derive(Clone)]
pub struct Component {
    /// The plugin's name in logs and metrics (safe for both).
    pub name: String,
    /// Where it came from, for people: `upload`, a file of the host that accepted it, a
    /// registry reference.
    pub origin: String,
    pub bytes: Arc<[u8]>,
    /// SHA-256 of `bytes`, hex.
    pub sha256: String,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("bytes", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl Component {
    /// A component named `name` (made safe), from `origin`.
    pub fn new(name: &str, origin: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes = bytes.into();
        Self {
            name: crate::files::safe_name(name),
            origin: origin.into(),
            sha256: crate::plugin::sha256_hex(&bytes),
            bytes,
        }
    }

    /// The spec that loads it.
    pub fn spec(&self) -> crate::plugin::PluginSpec {
        crate::plugin::PluginSpec::from_bytes(&self.name, &self.origin, self.bytes.clone())
    }

    /// The spec that loads it as another version of the plugin `settings` loads: its config,
    /// limits, memory watch and allowed origins stay the event hub's, whatever version runs.
    pub fn spec_with(&self, settings: &crate::plugin::PluginSpec) -> crate::plugin::PluginSpec {
        let mut spec = self.spec();
        spec.config = settings.config.clone();
        spec.limits = settings.limits;
        spec.memory_peak = settings.memory_peak.clone();
        spec.allowed_outbound_hosts = settings.allowed_outbound_hosts.clone();
        spec
    }
}

/// Why a recorded version could not be fetched from the group's store.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "the version record names no component digest (it was written by an older hubwasm that \
         shared plugins by path): swap the version again from this hubwasm"
    )]
    NoDigest,
    #[error(
        "the recorded digest {0:?} is not a SHA-256 in hex: the record is damaged; swap again"
    )]
    BadDigest(String),
    #[error(
        "the group's store has no component {sha256}: it was removed, or the swap did not finish \
         storing it; swap the version again"
    )]
    Missing { sha256: String },
    #[error(
        "the component stored as {sha256} has digest {found}: it was changed in the store, so it \
         is refused; swap the version again"
    )]
    Tampered { sha256: String, found: String },
    #[error("cannot read component {sha256} from the group's store: {message}")]
    Store { sha256: String, message: String },
}

/// Fetch the component stored as `sha256` for `group`, at most `limit` bytes, and check that
/// its bytes have that digest.
pub async fn fetch(
    store: &dyn Store,
    group: GroupName<'_>,
    sha256: Option<&str>,
    name: &str,
    origin: &str,
    limit: u64,
) -> Result<Component, FetchError> {
    let sha256 = sha256.ok_or(FetchError::NoDigest)?;
    if !crate::checkpoint::is_sha256_hex(sha256) {
        return Err(FetchError::BadDigest(sha256.chars().take(80).collect()));
    }
    let bytes = store
        .load_component(group, sha256, limit)
        .await
        .map_err(|e| FetchError::Store {
            sha256: sha256.to_string(),
            message: crate::errors::one_line(&e),
        })?
        .ok_or_else(|| FetchError::Missing {
            sha256: sha256.to_string(),
        })?;
    let component = Component::new(name, origin, bytes);
    if component.sha256 != sha256 {
        return Err(FetchError::Tampered {
            sha256: sha256.to_string(),
            found: component.sha256,
        });
    }
    Ok(component)
}

/// Fetch the version `record` names from `group`'s store ([`fetch`]) and load it under
/// `settings` ([`Component::spec_with`]): how a host follows a swap, or starts on one.
pub async fn load_recorded(
    runtime: &crate::plugin::Runtime,
    store: &dyn Store,
    group: GroupName<'_>,
    record: &crate::checkpoint::VersionRecord,
    settings: &crate::plugin::PluginSpec,
    limit: u64,
) -> Result<crate::plugin::Plugin, String> {
    let name = record.name.as_deref().unwrap_or_else(|| {
        std::path::Path::new(&record.path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin")
    });
    let component = fetch(
        store,
        group,
        record.sha256.as_deref(),
        name,
        &record.path,
        limit,
    )
    .await
    .map_err(|e| e.to_string())?;
    runtime
        .load(component.spec_with(settings))
        .await
        .map_err(|e| e.to_string())
}

/// Store `bytes` (whose SHA-256 is `sha256`) for `group`.
pub async fn save(
    store: &dyn Store,
    group: GroupName<'_>,
    sha256: &str,
    bytes: &[u8],
) -> Result<(), String> {
    store
        .save_component(group, sha256, bytes)
        .await
        .map_err(|e| crate::errors::one_line(&e))
}
