//! `hubwasm.toml`: what `hubwasm run` consumes, with which plugin, and where checkpoints live.
//!
//! ```toml
//! [checkpoints]                     # where ownership and checkpoints live
//! store = "local"                   # or "blob"
//! path = ".hubwasm/checkpoints"
//!
//! [[eventhub]]
//! name = "events"
//! connection_string = "Endpoint=sb://...;EntityPath=events"   # or namespace + credential, or embedded
//! consumer_group = "$Default"
//! plugin = "plugins/json_filter.wasm"
//! mode = "batch"                    # or "event"
//! max_batch_size = 100
//! max_wait_ms = 500
//! ```
//!
//! Unknown keys are errors, and every error names the line (TOML syntax and types) or the
//! setting (cross-field rules in [`RunConfig::validate`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backoff::Backoff;
use crate::plugin::Limits;

mod lines;
mod tenant;

pub use lines::Lines;
pub use tenant::{
    ConfigValue, Grants, NamedPlugin, SecretSource, TenantConfig, TenantLimits, DEFAULT_TENANT,
};

/// A config that cannot be used; says where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or type error; the message carries the line and column.
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {}{setting}: {message}", at_line(.line))]
    Invalid {
        path: PathBuf,
        /// The line of the setting, when known.
        line: Option<usize>,
        setting: String,
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Start the embedded Event Hubs endpoint in this process (event hubs with `embedded = true`
    /// use it).
    #[serde(default)]
    pub embedded: Option<EmbeddedConfig>,
    /// The admin API (health, status, metrics, hot swap); off unless this section is present.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub checkpoints: CheckpointConfig,
    /// Seconds between the one-line summaries (0 = none).
    #[serde(default = "default_summary_secs")]
    pub summary_interval_secs: u64,
    #[serde(default, rename = "eventhub")]
    pub event_hubs: Vec<EventHubConfig>,
    /// Tenants: limits, grants and admin tokens of the event hubs and plugins that name them.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// Named plugins event hubs refer to.
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<NamedPlugin>,
    /// OCI registries plugins come from (`plugin = "oci://host/repo:tag"`), with credentials.
    #[serde(default, rename = "registry")]
    pub registries: Vec<RegistryConfig>,
    /// Where the config was read from (for messages and relative paths); not a TOML key.
    #[serde(skip)]
    pub source: PathBuf,
    /// The lines of the array tables' keys (for messages); not a TOML key.
    #[serde(skip)]
    pub lines: Lines,
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn default_summary_secs() -> u64 {
    5
}

/// `[[registry]]`: credentials for an OCI registry plugins are pulled from. Registries not
/// listed are used anonymously; registries on loopback addresses over plain HTTP, every
/// other over HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `host[:port]`, as references name it.
    pub host: String,
    /// The environment variable holding the user name (for Azure Container Registry with a
    /// token: the token's name).
    pub username_env: String,
    /// The environment variable holding the password or token.
    pub password_env: String,
}

/// `[admin]`: the admin API (see `hubwasm run --help` and the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address; default `127.0.0.1:9466`. Anything but loopback exposes the status and
    /// metrics to the network (changes still need the token).
    #[serde(default = "default_admin_listen")]
    pub listen: std::net::SocketAddr,
    /// The environment variable holding the bearer token changes (swap) must carry; default
    /// `HUBWASM_ADMIN_TOKEN`. Unset or empty: the API is read-only.
    #[serde(default = "default_admin_token_env")]
    pub token_env: String,
    /// Directories a swap request may name host paths in (the operator's token only; a
    /// tenant never names a host path). Empty (the default): swaps carry the component's
    /// bytes, or a registry reference.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// The most bytes a plugin component may have, uploaded or read from a file; default
    /// 64 MiB.
    #[serde(default = "default_max_component_bytes")]
    pub max_component_bytes: u64,
    /// The most bytes a swap's replay events may have; default 16 MiB.
    #[serde(default = "default_max_replay_bytes")]
    pub max_replay_bytes: u64,
    /// An upload that sends nothing for this long is refused; default 30 000.
    #[serde(default = "default_upload_idle_timeout_ms")]
    pub upload_idle_timeout_ms: u64,
    /// An upload must be complete within this; default 600 000 (10 minutes).
    #[serde(default = "default_upload_timeout_ms")]
    pub upload_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_env: default_admin_token_env(),
            plugin_dirs: Vec::new(),
            max_component_bytes: default_max_component_bytes(),
            max_replay_bytes: default_max_replay_bytes(),
            upload_idle_timeout_ms: default_upload_idle_timeout_ms(),
            upload_timeout_ms: default_upload_timeout_ms(),
        }
    }
}

fn default_max_component_bytes() -> u64 {
    crate::files::DEFAULT_MAX_COMPONENT_BYTES
}

fn default_max_replay_bytes() -> u64 {
    crate::files::DEFAULT_MAX_EVENTS_BYTES
}

fn default_upload_idle_timeout_ms() -> u64 {
    30_000
}

fn default_upload_timeout_ms() -> u64 {
    600_000
}

fn default_admin_listen() -> std::net::SocketAddr {
    "127.0.0.1:9466".parse().expect("valid address")
}

fn default_admin_token_env() -> String {
    "HUBWASM_ADMIN_TOKEN".into()
}

/// The in-process endpoint (see `hubwasm hub serve`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// An endpoint config file (`hubwasm hub serve --config`); default: one hub `events` with 4
    /// partitions.
    pub config: Option<PathBuf>,
    /// Listen address; default `127.0.0.1:0` (any free port; nothing outside needs it).
    pub listen: Option<std::net::SocketAddr>,
    /// Data directory; default `.hubwasm/hub`.
    pub data: Option<PathBuf>,
}

/// Where ownership and checkpoints are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "store", rename_all = "lowercase")]
pub enum CheckpointConfig {
    /// A local directory, shared by the host processes of this machine.
    Local {
        #[serde(default = "default_checkpoint_path")]
        path: PathBuf,
    },
    /// Azure Blob Storage, in the official processors' layout.
    Blob(BlobContainerConfig),
}

/// A blob container and how to authenticate to it: give `sas_url`, or `container_url` with
/// `credential = "entra"`, or `endpoint`, `account`, `key` and `container`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobContainerConfig {
    /// Container URL with a SAS token (`https://acct.blob.core.windows.net/c?sv=...`).
    pub sas_url: Option<String>,
    /// Container URL for a Microsoft Entra identity (`credential = "entra"`).
    pub container_url: Option<String>,
    pub credential: Option<String>,
    /// Account endpoint, account and key, for Azurite or shared-key accounts; the host signs
    /// an account SAS with the key (and creates the container if it is missing).
    pub endpoint: Option<String>,
    pub account: Option<String>,
    pub key: Option<String>,
    pub container: Option<String>,
}

/// The way a [`BlobContainerConfig`] reaches its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobAuth<'a> {
    SasUrl(&'a str),
    Entra {
        container_url: &'a str,
    },
    AccountKey {
        endpoint: &'a str,
        account: &'a str,
        key: &'a str,
        container: &'a str,
    },
}

impl BlobContainerConfig {
    /// The first of the three ways to reach the container that is given in full, if any.
    pub fn auth(&self) -> Option<BlobAuth<'_>> {
        if let Some(url) = &self.sas_url {
            return Some(BlobAuth::SasUrl(url));
        }
        if let (Some(container_url), Some("entra")) =
            (&self.container_url, self.credential.as_deref())
        {
            return Some(BlobAuth::Entra { container_url });
        }
        match (&self.endpoint, &self.account, &self.key, &self.container) {
            (Some(endpoint), Some(account), Some(key), Some(container)) => {
                Some(BlobAuth::AccountKey {
                    endpoint,
                    account,
                    key,
                    container,
                })
            }
            _ => None,
        }
    }

    /// Whether one of the three ways to reach the container is given in full.
    pub fn is_complete(&self) -> bool {
        self.auth().is_some()
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self::Local {
            path: default_checkpoint_path(),
        }
    }
}

fn default_checkpoint_path() -> PathBuf {
    PathBuf::from(".hubwasm/checkpoints")
}

/// Per-event or per-batch calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One call per event (a batch plugin gets batches of one).
    Event,
    /// Up to `max_batch_size` events per call, waiting at most `max_wait_ms` to fill a batch.
    #[default]
    Batch,
}

/// Where a partition without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// The oldest retained event: nothing already in the hub is skipped.
    #[default]
    Earliest,
    /// Only events enqueued after the partition is opened.
    Latest,
}

/// What happens to an event the plugin keeps failing on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Retry with backoff, then write the event to the dead-letter sink and move on.
    #[default]
    DeadLetter,
    /// Retry with backoff, then stop the partition (keeping its ownership) and report.
    Halt,
}

/// Retry and failure policy of one event hub's plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureConfig {
    #[serde(default)]
    pub policy: FailurePolicy,
    /// Calls of the plugin on a failing event before the policy applies (≥ 1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
}

fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff() -> u64 {
    200
}
fn default_max_backoff() -> u64 {
    30_000
}

impl Default for FailureConfig {
    fn default() -> Self {
        Self {
            policy: FailurePolicy::default(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff(),
            max_backoff_ms: default_max_backoff(),
        }
    }
}

impl FailureConfig {
    /// The retry curve: from `initial_backoff_ms`, doubling, capped at `max_backoff_ms`.
    pub fn backoff_curve(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
    }
}

/// Where dead-lettered events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "sink", rename_all = "lowercase")]
pub enum DeadLetterConfig {
    /// One JSON line per event in `<path>/<eventhub>/<consumergroup>/<partition>.jsonl`.
    Directory {
        #[serde(default = "default_dead_letter_path")]
        path: PathBuf,
    },
    /// One JSON blob per event, `<eventhub>/<consumergroup>/<partition>/<sequence number>.json`,
    /// in a container (same auth options as the Blob checkpoint store).
    Blob(BlobContainerConfig),
    /// Another event hub: the original body and properties, with the failure as properties.
    EventHub { connection_string: String },
}

fn default_dead_letter_path() -> PathBuf {
    PathBuf::from(".hubwasm/dead-letter")
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self::Directory {
            path: default_dead_letter_path(),
        }
    }
}

/// Load balancing through the SDK's `EventProcessor`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancingConfig {
    /// `balanced` (claim one partition per interval) or `greedy` (claim all it may at once).
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// How often ownership is renewed and rebalanced.
    #[serde(default = "default_update_interval")]
    pub update_interval_ms: u64,
    /// An ownership not renewed for this long may be taken over.
    #[serde(default = "default_ownership_expiry")]
    pub ownership_expiry_ms: u64,
    /// Events the SDK prefetches per partition (link credit).
    #[serde(default = "default_prefetch")]
    pub prefetch: u32,
    /// How often a partition reads its ownership record, to stop before its next batch once
    /// another instance has taken it (see `processor::fence`). 0: before every batch, waiting
    /// for the read (a steal costs the batch in flight; one store read per batch). Otherwise in
    /// the background at most this often (a steal costs at most this long's events).
    #[serde(default = "default_ownership_check")]
    pub ownership_check_ms: u64,
}

fn default_strategy() -> String {
    "balanced".into()
}
// The seed's consumer uses 5 s and 10 s.
fn default_update_interval() -> u64 {
    5_000
}
fn default_ownership_expiry() -> u64 {
    10_000
}
fn default_prefetch() -> u32 {
    300
}
fn default_ownership_check() -> u64 {
    1_000
}

impl Default for BalancingConfig {
    fn default() -> Self {
        Self {
            strategy: default_strategy(),
            update_interval_ms: default_update_interval(),
            ownership_expiry_ms: default_ownership_expiry(),
            prefetch: default_prefetch(),
            ownership_check_ms: default_ownership_check(),
        }
    }
}

/// `[eventhub.dedupe]`: the "second checkpoint". Events whose key was recorded are skipped
/// before they reach the plugin; the keys of handled events are recorded before the checkpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Where the key comes from: `json:<field>` (a top-level field of a JSON body),
    /// `property:<name>`, or `message-id`. Events without one are not deduplicated. Left out,
    /// the host skips nothing itself and the store serves the plugin's `first-seen` only.
    #[serde(default)]
    pub key: Option<String>,
    /// How long a key is remembered, in seconds; default 7 days (Event Hubs' longest standard
    /// retention: a replay from the earliest event finds every key still recorded).
    #[serde(default = "default_dedupe_ttl")]
    pub ttl_secs: u64,
    /// `local` (SQLite in `path`) or `redis` (at `url`).
    #[serde(default)]
    pub store: DedupeStoreKind,
    /// The SQLite file (relative to the config file); default `.hubwasm/dedupe.sqlite`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The Redis URL (`redis://host:port[/db]`, `rediss://` for TLS), for `store = "redis"`.
    #[serde(default)]
    pub url: Option<String>,
}

/// Where dedupe keys are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupeStoreKind {
    /// SQLite in a file, shared by the host processes of one machine.
    #[default]
    Local,
    /// Redis (Azure Cache for Redis), shared by hosts on any machine.
    Redis,
}

fn default_dedupe_ttl() -> u64 {
    7 * 24 * 3600
}

impl DedupeConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    /// The SQLite file.
    pub fn local_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(".hubwasm/dedupe.sqlite"))
    }
}

/// `[eventhub.state]`: keyed state per partition for the plugin (contract 0.2's `state`),
/// committed with the partition's position before each checkpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `local` (SQLite in `path`) or `redis` (at `url`).
    #[serde(default)]
    pub store: DedupeStoreKind,
    /// The SQLite file (relative to the config file); default `.hubwasm/state.sqlite`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The Redis URL, for `store = "redis"`.
    #[serde(default)]
    pub url: Option<String>,
    /// The largest value of one key; default 64 KiB.
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: usize,
    /// The most one partition's state may hold (keys and values; it is kept in memory while the
    /// partition is owned); default 64 MiB.
    #[serde(default = "default_max_state_bytes")]
    pub max_bytes: usize,
}

fn default_max_value_bytes() -> usize {
    64 * 1024
}
fn default_max_state_bytes() -> usize {
    64 * 1024 * 1024
}

impl StateConfig {
    /// The SQLite file.
    pub fn local_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(".hubwasm/state.sqlite"))
    }
}

/// `[[eventhub.output]]`: an event hub the plugin may emit to, by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// The name the plugin emits to (`emit.send(name, ..)`).
    pub name: String,
    /// The event hub; default: the output's name (or the connection string's EntityPath).
    #[serde(default)]
    pub event_hub: Option<String>,
    /// `Endpoint=sb://...;SharedAccessKeyName=..;SharedAccessKey=..[;EntityPath=..]`.
    #[serde(default)]
    pub connection_string: Option<String>,
    /// A namespace reached with a Microsoft Entra identity (`credential = "entra"`).
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
    /// An event hub of this process's embedded endpoint (`[embedded]`).
    #[serde(default)]
    pub embedded: bool,
}

impl OutputConfig {
    /// The event hub named by `event_hub`, else by the output's name; a connection string's
    /// EntityPath wins over both (see [`OutputConfig::event_hub_name`]).
    pub fn target(&self) -> &str {
        self.event_hub.as_deref().unwrap_or(&self.name)
    }

    /// The event hub it really sends to (what a tenant must be granted).
    pub fn event_hub_name(&self) -> String {
        self.connection_string
            .as_deref()
            .and_then(|cs| {
                crate::connection::ConnectionString::parse(&with_entity(cs, self.target())).ok()
            })
            .map(|c| c.entity_path)
            .unwrap_or_else(|| self.target().to_string())
    }
}

/// `[eventhub.swap]`: how new plugin versions arrive and are checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapConfig {
    /// Sample events (.jsonl, one body per line, as `hubwasm plugin test` reads them) every new
    /// version must handle without a failure before it is swapped in.
    #[serde(default)]
    pub replay_events: Option<PathBuf>,
    /// Watch the plugin file: when it is replaced (and stays unchanged for a second), swap the
    /// new file in, checked as any swap. Off by default.
    #[serde(default)]
    pub watch: bool,
}

/// `[eventhub.rollback]`: when a swapped-in plugin version is taken back by itself.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// Roll a new version back when it fails too often after a swap (default true).
    #[serde(default = "default_true")]
    pub automatic: bool,
    /// The share of the new version's calls on events that may fail (0 < rate <= 1) before it
    /// is rolled back; default 0.5.
    #[serde(default = "default_rollback_rate")]
    pub failure_rate: f64,
    /// How long after a swap the new version is watched; default 60 s.
    #[serde(default = "default_rollback_window")]
    pub window_ms: u64,
    /// Failures needed before the rate counts (a single poison event is not a storm); default 20.
    #[serde(default = "default_rollback_min_failures")]
    pub min_failures: u64,
}

fn default_true() -> bool {
    true
}
fn default_rollback_rate() -> f64 {
    0.5
}
fn default_rollback_window() -> u64 {
    60_000
}
fn default_rollback_min_failures() -> u64 {
    20
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            automatic: true,
            failure_rate: default_rollback_rate(),
            window_ms: default_rollback_window(),
            min_failures: default_rollback_min_failures(),
        }
    }
}

/// One event hub to consume.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHubConfig {
    /// The event hub (entity) name.
    pub name: String,
    /// `Endpoint=sb://...;SharedAccessKeyName=..;SharedAccessKey=..[;EntityPath=..]`.
    pub connection_string: Option<String>,
    /// Fully qualified namespace for a Microsoft Entra identity (`credential = "entra"`).
    pub namespace: Option<String>,
    pub credential: Option<String>,
    /// Use the embedded endpoint of this process (`[embedded]`).
    #[serde(default)]
    pub embedded: bool,
    #[serde(default = "default_consumer_group")]
    pub consumer_group: String,
    /// The tenant the event hub's processing belongs to; default: the named plugin's tenant,
    /// else `default`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The plugin: a `[[plugin]]` name, or a component file (`.wasm`) relative to the config
    /// file. After parsing, always the component file.
    pub plugin: PathBuf,
    /// The `[[plugin]]` this event hub names, if it names one; not a TOML key.
    #[serde(skip)]
    pub plugin_name: Option<String>,
    /// Passed to the plugin's `init`: text, or `{ secret = "name" }` granted to the tenant.
    #[serde(default)]
    pub plugin_config: BTreeMap<String, ConfigValue>,
    #[serde(default)]
    pub limits: Option<Limits>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "default_max_batch")]
    pub max_batch_size: usize,
    #[serde(default = "default_max_wait")]
    pub max_wait_ms: u64,
    #[serde(default)]
    pub start: Start,
    #[serde(default)]
    pub balancing: BalancingConfig,
    #[serde(default)]
    pub failure: FailureConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub rollback: RollbackConfig,
    #[serde(default)]
    pub swap: SwapConfig,
    #[serde(default)]
    pub dedupe: Option<DedupeConfig>,
    /// `[eventhub.state]`: keyed state for the plugin.
    #[serde(default)]
    pub state: Option<StateConfig>,
    /// `[[eventhub.output]]`: where the plugin may emit events.
    #[serde(default)]
    pub output: Vec<OutputConfig>,
    /// Origins the plugin may reach with outbound HTTP (`https://api.example.com`,
    /// `http://127.0.0.1:8080`); none by default.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
}

fn default_consumer_group() -> String {
    "$Default".into()
}
fn default_max_batch() -> usize {
    100
}
fn default_max_wait() -> u64 {
    500
}

impl RunConfig {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate config text; `path` is for messages and relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: RunConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config.source = path.to_path_buf();
        config.lines = Lines::read(text);
        config.use_named_plugins()?;
        config.resolve_paths();
        config.validate()?;
        config.apply_tenant_limits();
        Ok(config)
    }

    /// Paths in the file are relative to the file.
    fn resolve_paths(&mut self) {
        let base = self
            .source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let fix = |p: &mut PathBuf| {
            let reference = crate::registry::as_reference(p).is_some();
            if p.is_relative() && !base.as_os_str().is_empty() && !reference {
                *p = base.join(&*p);
            }
        };
        if let CheckpointConfig::Local { path } = &mut self.checkpoints {
            fix(path);
        }
        if let Some(embedded) = &mut self.embedded {
            if let Some(c) = &mut embedded.config {
                fix(c);
            }
            if let Some(d) = &mut embedded.data {
                fix(d);
            }
        }
        for plugin in &mut self.plugins {
            fix(&mut plugin.path);
        }
        for tenant in &mut self.tenants {
            for source in tenant.grants.secrets.values_mut() {
                if let SecretSource::File(path) = source {
                    fix(path);
                }
            }
        }
        for hub in &mut self.event_hubs {
            fix(&mut hub.plugin);
            if let Some(events) = &mut hub.swap.replay_events {
                fix(events);
            }
            if let DeadLetterConfig::Directory { path } = &mut hub.dead_letter {
                fix(path);
            }
            if let Some(dedupe) = &mut hub.dedupe {
                let mut path = dedupe.local_path();
                fix(&mut path);
                dedupe.path = Some(path);
            }
            if let Some(state) = &mut hub.state {
                let mut path = state.local_path();
                fix(&mut path);
                state.path = Some(path);
            }
        }
    }

    fn invalid(&self, setting: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            line: None,
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// An error about `key` of the `index`th `[[section]]`, with its line.
    pub(crate) fn invalid_at(
        &self,
        (section, index, key): (&str, usize, &str),
        setting: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            line: self.lines.of(section, index, key),
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// Every entry of an allowed-origins list (an event hub's or a tenant's grant) parses as an
    /// origin; the first that does not is refused at its table's line.
    pub(crate) fn check_origins(
        &self,
        origins: &[String],
        section: (&str, usize, &str),
        setting: String,
    ) -> Result<(), ConfigError> {
        for origin in origins {
            crate::plugin::http::Origin::parse(origin)
                .map_err(|why| self.invalid_at(section, setting.clone(), why))?;
        }
        Ok(())
    }

    /// A dedupe or state store: Redis needs a URL, the local store takes a path.
    fn check_store(
        &self,
        here: (&str, usize, &str),
        setting: &str,
        store: DedupeStoreKind,
        url: &Option<String>,
    ) -> Result<(), ConfigError> {
        match (store, url) {
            (DedupeStoreKind::Redis, None) => Err(self.invalid_at(
                here,
                setting,
                "store = \"redis\" needs url = \"redis://host:port\"",
            )),
            (DedupeStoreKind::Local, Some(_)) => Err(self.invalid_at(
                here,
                setting,
                "url is for store = \"redis\"; the local store takes path",
            )),
            _ => Ok(()),
        }
    }

    /// `[[eventhub.output]]`: unique names, exactly one way to reach each.
    fn check_outputs(&self, i: usize, hub: &EventHubConfig) -> Result<(), ConfigError> {
        let here = ("eventhub", i, "output");
        let setting = |what: &str| format!("event hub {}: output.{what}", hub.name);
        for (n, output) in hub.output.iter().enumerate() {
            if output.name.is_empty() || output.name.len() > 256 {
                return Err(self.invalid_at(
                    here,
                    setting("name"),
                    "give a name of 1 to 256 characters",
                ));
            }
            if hub.output[..n].iter().any(|o| o.name == output.name) {
                return Err(self.invalid_at(
                    here,
                    setting("name"),
                    format!(
                        "`{}` is used by two outputs; give each its own name",
                        output.name
                    ),
                ));
            }
            let ways = [
                output.connection_string.is_some(),
                output.namespace.is_some(),
                output.embedded,
            ]
            .iter()
            .filter(|w| **w)
            .count();
            if ways != 1 {
                return Err(self.invalid_at(
                    here,
                    setting("connection_string"),
                    format!(
                        "output `{}`: give exactly one of connection_string, namespace (with \
                         credential = \"entra\") or embedded = true",
                        output.name
                    ),
                ));
            }
            if let Some(cs) = &output.connection_string {
                let cs = with_entity(cs, output.target());
                crate::connection::ConnectionString::parse(&cs).map_err(|e| {
                    self.invalid_at(here, setting("connection_string"), e.to_string())
                })?;
            }
            if output.namespace.is_some() && output.credential.as_deref() != Some("entra") {
                return Err(self.invalid_at(
                    here,
                    setting("credential"),
                    format!(
                        "output `{}`: namespace needs credential = \"entra\"",
                        output.name
                    ),
                ));
            }
            if output.embedded && self.embedded.is_none() {
                return Err(self.invalid_at(
                    here,
                    setting("embedded"),
                    format!(
                        "output `{}`: embedded = true needs an [embedded] section",
                        output.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Cross-field rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.event_hubs.is_empty() {
            return Err(self.invalid(
                "[[eventhub]]",
                "no event hub to consume; add an [[eventhub]] section with name and plugin",
            ));
        }
        if let CheckpointConfig::Blob(blob) = &self.checkpoints {
            if !blob.is_complete() {
                return Err(self.invalid("[checkpoints] store = \"blob\"", BLOB_AUTH_HINT));
            }
        }
        let mut seen = std::collections::HashMap::new();
        for (i, hub) in self.event_hubs.iter().enumerate() {
            let at = |field: &str| format!("eventhub[{i}] ({}).{field}", hub.name);
            if hub.name.trim().is_empty() {
                return Err(self.invalid_at(("eventhub", i, "name"), at("name"), "is empty"));
            }
            if let Some(j) = seen.insert(
                (
                    hub.source_key(),
                    hub.name.clone(),
                    hub.consumer_group.clone(),
                ),
                i,
            ) {
                let other = &self.event_hubs[j];
                let message = if other.tenant_name() != hub.tenant_name() {
                    format!(
                        "consumer group {} of event hub {} is given to tenants {} (eventhub[{j}]) \
                         and {}: a consumer group belongs to one tenant; give each tenant its own",
                        hub.consumer_group,
                        hub.name,
                        other.tenant_name(),
                        hub.tenant_name()
                    )
                } else {
                    format!(
                        "the same event hub and consumer group appear twice (eventhub[{j}] too)"
                    )
                };
                return Err(self.invalid_at(
                    ("eventhub", i, "consumer_group"),
                    at("consumer_group"),
                    message,
                ));
            }
            let sources = [
                hub.connection_string.is_some(),
                hub.namespace.is_some(),
                hub.embedded,
            ]
            .iter()
            .filter(|s| **s)
            .count();
            if sources != 1 {
                return Err(self.invalid(
                    at("connection_string"),
                    "give exactly one of connection_string, namespace (with credential = \
                     \"entra\") or embedded = true",
                ));
            }
            if hub.namespace.is_some() && hub.credential.as_deref() != Some("entra") {
                return Err(self.invalid(
                    at("credential"),
                    "with namespace, set credential = \"entra\" (Microsoft Entra identity)",
                ));
            }
            if hub.embedded && self.embedded.is_none() {
                return Err(self.invalid(
                    at("embedded"),
                    "embedded = true needs an [embedded] section (it may be empty)",
                ));
            }
            if let Some(conn) = &hub.connection_string {
                crate::connection::ConnectionString::parse(&with_entity(conn, &hub.name))
                    .map_err(|e| self.invalid(at("connection_string"), e.to_string()))?;
            }
            if hub.max_batch_size == 0 {
                return Err(self.invalid(at("max_batch_size"), "must be at least 1"));
            }
            if hub.failure.max_attempts == 0 {
                return Err(self.invalid(at("failure.max_attempts"), "must be at least 1"));
            }
            if !matches!(hub.balancing.strategy.as_str(), "balanced" | "greedy") {
                return Err(self.invalid(
                    at("balancing.strategy"),
                    format!("`{}`: use `balanced` or `greedy`", hub.balancing.strategy),
                ));
            }
            let rollback = &hub.rollback;
            if !(rollback.failure_rate > 0.0 && rollback.failure_rate <= 1.0) {
                return Err(self.invalid(
                    at("rollback.failure_rate"),
                    format!(
                        "{}: give a share above 0 and at most 1, e.g. 0.5",
                        rollback.failure_rate
                    ),
                ));
            }
            if let Some(events) = &hub.swap.replay_events {
                if !events.is_file() {
                    return Err(self.invalid(
                        at("swap.replay_events"),
                        format!(
                            "{} is not a file: give a .jsonl of sample events (one body per line)",
                            events.display()
                        ),
                    ));
                }
            }
            if let Some(dedupe) = &hub.dedupe {
                let here = ("eventhub", i, "dedupe");
                if let Some(key) = &dedupe.key {
                    crate::effects::dedupe::KeySource::parse(key)
                        .map_err(|why| self.invalid_at(here, at("dedupe.key"), why))?;
                }
                self.check_store(here, &at("dedupe.url"), dedupe.store, &dedupe.url)?;
                if dedupe.ttl_secs == 0 {
                    return Err(self.invalid_at(
                        here,
                        at("dedupe.ttl_secs"),
                        "must be at least 1 (keys kept 0 s dedupe nothing)",
                    ));
                }
            }
            if let Some(state) = &hub.state {
                let here = ("eventhub", i, "state");
                self.check_store(here, &at("state.url"), state.store, &state.url)?;
                if state.max_value_bytes == 0 || state.max_value_bytes > state.max_bytes {
                    return Err(self.invalid_at(
                        here,
                        at("state.max_value_bytes"),
                        "must be at least 1 and at most max_bytes",
                    ));
                }
            }
            self.check_outputs(i, hub)?;
            self.check_origins(
                &hub.allowed_outbound_hosts,
                ("eventhub", i, "allowed_outbound_hosts"),
                at("allowed_outbound_hosts"),
            )?;
            if rollback.min_failures == 0 {
                return Err(self.invalid(at("rollback.min_failures"), "must be at least 1"));
            }
            if hub.balancing.ownership_expiry_ms <= hub.balancing.update_interval_ms {
                return Err(self.invalid(
                    at("balancing.ownership_expiry_ms"),
                    "must be longer than update_interval_ms (twice as long is usual), or \
                     ownership expires between renewals",
                ));
            }
            if let DeadLetterConfig::Blob(blob) = &hub.dead_letter {
                if !blob.is_complete() {
                    return Err(self.invalid(at("dead_letter.sink"), BLOB_AUTH_HINT));
                }
            }
            if let DeadLetterConfig::EventHub { connection_string } = &hub.dead_letter {
                crate::connection::ConnectionString::parse(connection_string).map_err(|e| {
                    self.invalid(at("dead_letter.connection_string"), e.to_string())
                })?;
            }
        }
        self.validate_admin()?;
        self.validate_registries()?;
        self.validate_tenants()
    }

    /// Registry references parse, and a tenant's are within its `registries` grant.
    fn validate_registries(&self) -> Result<(), ConfigError> {
        for (i, hub) in self.event_hubs.iter().enumerate() {
            let Some(text) = crate::registry::as_reference(&hub.plugin) else {
                continue;
            };
            let at = format!("eventhub[{i}] ({}).plugin", hub.name);
            let reference = crate::registry::OciRef::parse(text).map_err(|e| {
                self.invalid_at(("eventhub", i, "plugin"), at.clone(), e.to_string())
            })?;
            if let Some(tenant) = hub.tenant.as_deref().and_then(|t| self.tenant(t)) {
                if !reference.is_granted(&tenant.grants.registries) {
                    return Err(self.invalid_at(
                        ("eventhub", i, "plugin"),
                        at,
                        format!(
                            "tenant {} may pull only from the registries granted to it \
                             ([tenant.grants] registries = {:?}); {reference} is not among them",
                            tenant.name, tenant.grants.registries
                        ),
                    ));
                }
            }
        }
        for (i, registry) in self.registries.iter().enumerate() {
            if registry.host.is_empty() || registry.host.contains('/') {
                return Err(self.invalid(
                    format!("registry[{i}].host"),
                    "give the registry as host[:port], e.g. myregistry.azurecr.io",
                ));
            }
        }
        Ok(())
    }

    /// Each `[[registry]]`'s credentials, read from its environment variables (unset ones are
    /// left out: that registry is used anonymously).
    pub fn registry_credentials(&self) -> std::collections::HashMap<String, (String, String)> {
        self.registries
            .iter()
            .filter_map(|r| {
                let user = std::env::var(&r.username_env).ok()?;
                let password = std::env::var(&r.password_env).ok()?;
                Some((r.host.clone(), (user, password)))
            })
            .collect()
    }

    /// `[admin]`: the bounds of uploads and the directories host paths may name.
    fn validate_admin(&self) -> Result<(), ConfigError> {
        let Some(admin) = &self.admin else {
            return Ok(());
        };
        for (key, value) in [
            ("max_component_bytes", admin.max_component_bytes),
            ("max_replay_bytes", admin.max_replay_bytes),
        ] {
            if value == 0 || value > MAX_UPLOAD_BYTES {
                return Err(self.invalid(
                    format!("[admin] {key}"),
                    format!("{value}: give a size from 1 to {MAX_UPLOAD_BYTES} bytes (1 GiB)"),
                ));
            }
        }
        for (key, value) in [
            ("upload_idle_timeout_ms", admin.upload_idle_timeout_ms),
            ("upload_timeout_ms", admin.upload_timeout_ms),
        ] {
            if value == 0 {
                return Err(self.invalid(format!("[admin] {key}"), "must be at least 1"));
            }
        }
        for dir in &admin.plugin_dirs {
            if !dir.is_absolute() || !dir.is_dir() {
                return Err(self.invalid(
                    "[admin] plugin_dirs",
                    format!(
                        "{} is not an absolute path of a directory: name directories that exist, \
                         from the root",
                        dir.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The most bytes a plugin component may have ([admin] max_component_bytes).
    pub fn max_component_bytes(&self) -> u64 {
        self.admin
            .as_ref()
            .map_or(crate::files::DEFAULT_MAX_COMPONENT_BYTES, |a| {
                a.max_component_bytes
            })
    }

    /// The most bytes a swap's replay events may have ([admin] max_replay_bytes).
    pub fn max_replay_bytes(&self) -> u64 {
        self.admin
            .as_ref()
            .map_or(crate::files::DEFAULT_MAX_EVENTS_BYTES, |a| {
                a.max_replay_bytes
            })
    }
}

/// The largest upload bound a config may set.
const MAX_UPLOAD_BYTES: u64 = 1 << 30;

impl EventHubConfig {
    /// The tenant this event hub's processing belongs to.
    pub fn tenant_name(&self) -> &str {
        self.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }

    /// Which namespace the event hub is in, as far as the config tells (for duplicates).
    fn source_key(&self) -> String {
        if self.embedded {
            return "embedded".into();
        }
        if let Some(ns) = &self.namespace {
            return ns.to_ascii_lowercase();
        }
        let conn = self.connection_string.as_deref().unwrap_or_default();
        crate::connection::ConnectionString::parse(&with_entity(conn, &self.name))
            .map(|c| c.host.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// What a Blob container config needs (for config errors).
pub(crate) const BLOB_AUTH_HINT: &str = "give sas_url, or container_url with credential = \
                                         \"entra\", or endpoint, account, key and container";

/// A connection string with `EntityPath` set to `hub` unless it names one already.
pub fn with_entity(connection_string: &str, hub: &str) -> String {
    if connection_string
        .to_ascii_lowercase()
        .contains("entitypath=")
    {
        connection_string.to_string()
    } else {
        format!(
            "{};EntityPath={hub}",
            connection_string.trim_end_matches(';')
        )
    }
}

/// The TOML error with its line (1-based) and the offending line quoted.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_string();
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let quoted = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line}: {message} (`{quoted}`)")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[eventhub]]
name = "events"
connection_string = "Endpoint=sb://localhost;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true"
plugin = "filter.wasm"
"#;

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let c = RunConfig::parse(MINIMAL, Path::new("/etc/hubwasm/hubwasm.toml")).unwrap();
        let hub = &c.event_hubs[0];
        assert_eq!(hub.consumer_group, "$Default");
        assert_eq!(hub.plugin, PathBuf::from("/etc/hubwasm/filter.wasm"));
        assert_eq!(hub.mode, Mode::Batch);
        assert_eq!(hub.start, Start::Earliest);
        assert_eq!(hub.failure.policy, FailurePolicy::DeadLetter);
        assert_eq!(hub.balancing.update_interval_ms, 5_000);
        assert_eq!(hub.balancing.ownership_expiry_ms, 10_000);
        assert!(matches!(
            &c.checkpoints,
            CheckpointConfig::Local { path } if path == Path::new("/etc/hubwasm/.hubwasm/checkpoints")
        ));
    }

    #[test]
    fn syntax_and_type_errors_name_the_line() {
        let text = format!("{MINIMAL}max_batch_size = \"ten\"\n");
        let err = RunConfig::parse(&text, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("line 6"), "{err}");
        let text = format!("{MINIMAL}colour = \"blue\"\n");
        let err = RunConfig::parse(&text, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("line 6"), "{err}");
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn cross_field_errors_name_the_setting() {
        let text = MINIMAL.replace("plugin =", "embedded = true\nplugin =");
        let err = RunConfig::parse(&text, Path::new("x.toml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("eventhub[0] (events).connection_string"),
            "{err}"
        );
        let text = format!("{MINIMAL}[eventhub.balancing]\nupdate_interval_ms = 10000\nownership_expiry_ms = 5000\n");
        let err = RunConfig::parse(&text, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("ownership_expiry_ms"), "{err}");
        let err = RunConfig::parse("", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("[[eventhub]]"), "{err}");
        let text = format!("[checkpoints]\nstore = \"blob\"\n{MINIMAL}");
        let err = RunConfig::parse(&text, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("sas_url"), "{err}");
    }

    /// The admin, swap and rollback settings: bad values are refused naming the setting.
    /// The upload bounds, plugin_dirs, [[registry]] and registry references are checked at
    /// load, naming the setting.
    #[test]
    fn upload_bounds_plugin_dirs_and_registries_are_checked() {
        let parse = |extra: &str| {
            RunConfig::parse(&format!("{extra}\n{MINIMAL}"), Path::new("x.toml"))
                .map_err(|e| e.to_string())
        };
        let on = parse("[admin]").unwrap();
        let admin = on.admin.as_ref().unwrap();
        assert_eq!(admin.max_component_bytes, 64 << 20);
        assert_eq!(admin.max_replay_bytes, 16 << 20);
        assert!(admin.plugin_dirs.is_empty());
        assert_eq!(on.max_replay_bytes(), 16 << 20);
        let dir = tempfile::tempdir().unwrap();
        let ok = parse(&format!(
            "[admin]\nplugin_dirs = [\"{}\"]\nmax_component_bytes = 1024",
            dir.path().display()
        ))
        .unwrap();
        assert_eq!(ok.max_component_bytes(), 1024);
        for (extra, names) in [
            ("[admin]\nmax_component_bytes = 0", "max_component_bytes"),
            ("[admin]\nmax_component_bytes = 2000000000", "max_component_bytes"),
            ("[admin]\nmax_replay_bytes = 0", "max_replay_bytes"),
            ("[admin]\nmax_replay_bytes = -1", "max_replay_bytes"),
            ("[admin]\nupload_idle_timeout_ms = 0", "upload_idle_timeout_ms"),
            ("[admin]\nupload_timeout_ms = 0", "upload_timeout_ms"),
            ("[admin]\nplugin_dirs = [\"relative/dir\"]", "plugin_dirs"),
            ("[admin]\nplugin_dirs = [\"/no/such/dir/hubwasm\"]", "plugin_dirs"),
            ("[admin]\nplugin_dirs = \"/tmp\"", "plugin_dirs"),
            (
                "[[registry]]\nhost = \"reg.example/acme\"\nusername_env = \"U\"\npassword_env = \"P\"",
                "registry[0].host",
            ),
            ("[[registry]]\nhost = \"reg.example\"\nusername = \"inline\"", "username"),
        ] {
            let err = parse(extra).unwrap_err();
            assert!(err.contains(names), "{extra}: {err}");
        }
        // A registry reference is kept as written (not made relative to the config) and parsed.
        let hub = |plugin: &str| {
            RunConfig::parse(
                &MINIMAL.replace(
                    "plugin = \"filter.wasm\"",
                    &format!("plugin = \"{plugin}\""),
                ),
                Path::new("configs/x.toml"),
            )
            .map_err(|e| e.to_string())
        };
        let config = hub("oci://reg.example:5000/acme/filter:v1").unwrap();
        assert_eq!(
            config.event_hubs[0].plugin,
            Path::new("oci://reg.example:5000/acme/filter:v1")
        );
        for bad in ["oci://filter:v1", "oci://reg.example/acme/filter:v1 extra"] {
            let err = hub(bad).unwrap_err();
            assert!(
                err.contains("eventhub[0] (events).plugin") && err.contains("oci://"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn admin_swap_and_rollback_settings_are_checked() {
        let parse =
            |extra: &str| RunConfig::parse(&format!("{extra}\n{MINIMAL}"), Path::new("x.toml"));
        let ok = parse("").unwrap();
        assert!(ok.admin.is_none(), "the admin API is off unless configured");
        let on = parse("[admin]").unwrap().admin.unwrap();
        assert_eq!(on.listen.to_string(), "127.0.0.1:9466");
        assert_eq!(on.token_env, "HUBWASM_ADMIN_TOKEN");
        for (extra, names) in [
            ("[admin]\nlisten = \"not-an-address\"", "listen"),
            ("[admin]\ntoken = \"inline\"", "token"),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(names), "{extra}: {err}");
        }
        let hub = |extra: &str| {
            RunConfig::parse(&format!("{MINIMAL}{extra}\n"), Path::new("x.toml"))
                .map_err(|e| e.to_string())
        };
        let defaults = hub("").unwrap();
        let rollback = defaults.event_hubs[0].rollback;
        assert!(rollback.automatic && rollback.failure_rate == 0.5 && rollback.min_failures == 20);
        assert!(!defaults.event_hubs[0].swap.watch);
        for (extra, names) in [
            (
                "[eventhub.rollback]\nfailure_rate = 0.0",
                "rollback.failure_rate",
            ),
            (
                "[eventhub.rollback]\nfailure_rate = 1.5",
                "rollback.failure_rate",
            ),
            (
                "[eventhub.rollback]\nfailure_rate = nan",
                "rollback.failure_rate",
            ),
            (
                "[eventhub.rollback]\nmin_failures = 0",
                "rollback.min_failures",
            ),
            ("[eventhub.rollback]\nwindow = 5", "window"),
            (
                "[eventhub.swap]\nreplay_events = \"no/such/events.jsonl\"",
                "swap.replay_events",
            ),
            ("[eventhub.swap]\nwatch = \"yes\"", "watch"),
        ] {
            let err = hub(extra).unwrap_err();
            assert!(err.contains(names), "{extra}: {err}");
        }
    }

    #[test]
    fn the_documented_examples_parse() {
        let text = include_str!("../../../examples/hubwasm.toml");
        let c = RunConfig::parse(text, Path::new("examples/hubwasm.toml")).unwrap();
        assert_eq!(c.event_hubs[0].failure.max_attempts, 5);
        assert_eq!(
            c.event_hubs[0].limits.unwrap().timeout,
            Duration::from_secs(5)
        );
        let text = include_str!("../../../examples/hubwasm-azurite.toml");
        let c = RunConfig::parse(text, Path::new("examples/hubwasm-azurite.toml")).unwrap();
        assert!(matches!(c.checkpoints, CheckpointConfig::Blob(ref b) if b.is_complete()));
        assert!(matches!(
            c.event_hubs[0].dead_letter,
            DeadLetterConfig::Blob(_)
        ));
    }

    /// `[eventhub.state]`, `[[eventhub.output]]` and `allowed_outbound_hosts`: bad values are
    /// refused with the line and the setting.
    #[test]
    fn effect_settings_are_checked() {
        let parse = |extra: &str| {
            RunConfig::parse(
                &format!("{MINIMAL}{extra}\n"),
                Path::new("/etc/hubwasm/x.toml"),
            )
            .map_err(|e| e.to_string())
        };
        let ok = parse("[eventhub.state]\n[[eventhub.output]]\nname = \"kept\"\nconnection_string = \"Endpoint=sb://h;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=kept\"").unwrap();
        let state = ok.event_hubs[0].state.as_ref().unwrap();
        assert_eq!(
            state.local_path(),
            PathBuf::from("/etc/hubwasm/.hubwasm/state.sqlite")
        );
        assert_eq!(
            (state.max_value_bytes, state.max_bytes),
            (64 << 10, 64 << 20)
        );
        let cs = "connection_string = \"Endpoint=sb://h;SharedAccessKeyName=a;SharedAccessKey=b\"";
        for (extra, says) in [
            ("[eventhub.state]\nstore = \"redis\"", "state.url: store = \"redis\" needs url"),
            ("[eventhub.state]\nmax_value_bytes = 0", "state.max_value_bytes: must be at least 1"),
            ("[eventhub.state]\nmax_bytes = 10", "must be at least 1 and at most max_bytes"),
            ("[eventhub.state]\nsize = 1", "unknown field `size`"),
            ("[[eventhub.output]]\nname = \"a\"", "give exactly one of connection_string"),
            (&format!("[[eventhub.output]]\nname = \"a\"\n{cs}\n[[eventhub.output]]\nname = \"a\"\n{cs}"), "`a` is used by two outputs"),
            ("[[eventhub.output]]\nname = \"a\"\nembedded = true", "embedded = true needs an [embedded] section"),
            ("[[eventhub.output]]\nname = \"a\"\nnamespace = \"ns\"", "namespace needs credential = \"entra\""),
            ("[[eventhub.output]]\nname = \"a\"\nconnection_string = \"nope\"", "invalid connection string"),
            ("allowed_outbound_hosts = [\"example.com\"]", "origin such as"),
            ("allowed_outbound_hosts = [\"https://*.example.com\"]", "no path, user or wildcard"),
        ] {
            let extra = if extra.starts_with("allowed") {
                // A key of the [[eventhub]] table itself.
                MINIMAL.to_string() + extra
            } else {
                format!("{MINIMAL}{extra}")
            };
            let err = RunConfig::parse(&extra, Path::new("/etc/hubwasm/x.toml"))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{extra}: {err}");
            assert!(err.contains("line "), "{extra}: {err}");
        }
    }

    /// `[eventhub.dedupe]`: bad values are refused with the line and the setting.
    #[test]
    fn dedupe_settings_are_checked() {
        let parse = |extra: &str| {
            RunConfig::parse(
                &format!("{MINIMAL}[eventhub.dedupe]\n{extra}\n"),
                Path::new("/etc/hubwasm/x.toml"),
            )
            .map_err(|e| e.to_string())
        };
        let ok = parse("key = \"json:event_id\"").unwrap();
        // Without a key the store serves the plugin's first-seen only.
        assert!(parse("").unwrap().event_hubs[0]
            .dedupe
            .as_ref()
            .unwrap()
            .key
            .is_none());
        let dedupe = ok.event_hubs[0].dedupe.as_ref().unwrap();
        assert_eq!(dedupe.ttl(), Duration::from_secs(7 * 24 * 3600));
        assert_eq!(
            dedupe.local_path(),
            PathBuf::from("/etc/hubwasm/.hubwasm/dedupe.sqlite")
        );
        // Cross-field rules name the [eventhub.dedupe] table's line, syntax and types their own.
        let k = "key = \"json:id\"\n";
        for (extra, line, says) in [
            (
                "key = \"event_id\"".to_string(),
                6,
                "dedupe.key: `event_id`: use `json:<field>`",
            ),
            ("key = \"json:\"".to_string(), 6, "dedupe.key"),
            (
                format!("{k}ttl_secs = 0"),
                6,
                "dedupe.ttl_secs: must be at least 1",
            ),
            (
                format!("{k}store = \"redis\""),
                6,
                "dedupe.url: store = \"redis\" needs url",
            ),
            (
                format!("{k}url = \"redis://x\""),
                6,
                "dedupe.url: url is for store = \"redis\"",
            ),
            (
                format!("{k}store = \"memcached\""),
                8,
                "unknown variant `memcached`",
            ),
            (format!("{k}ttl = 5"), 8, "unknown field `ttl`"),
        ] {
            let err = parse(&extra).unwrap_err();
            assert!(
                err.contains(&format!("line {line}:")) && err.contains(says),
                "{extra}: {err}"
            );
        }
    }

    #[test]
    fn the_tenants_example_parses() {
        std::env::set_var("ACME_API_KEY", "a");
        std::env::set_var("GLOBEX_API_KEY", "g");
        let text = include_str!("../../../examples/hubwasm-tenants.toml");
        let c = RunConfig::parse(text, Path::new("examples/hubwasm-tenants.toml")).unwrap();
        assert_eq!(c.tenant_names(), vec!["acme", "globex"]);
        let globex = &c.event_hubs[1];
        assert_eq!(globex.tenant_name(), "globex");
        assert_eq!(globex.limits.unwrap().timeout, Duration::from_millis(200));
        assert_eq!(
            c.event_hubs[0].limits.unwrap().memory_bytes,
            64 << 20,
            "the tenant's limits apply to a plugin without its own"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let f = FailureConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..FailureConfig::default()
        };
        let curve = f.backoff_curve();
        let ms: Vec<u128> = (1..=6).map(|a| curve.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn entity_path_is_added_unless_present() {
        assert_eq!(
            with_entity("Endpoint=sb://x/;", "h"),
            "Endpoint=sb://x/;EntityPath=h"
        );
        assert_eq!(
            with_entity("Endpoint=sb://x/;EntityPath=a", "h"),
            "Endpoint=sb://x/;EntityPath=a"
        );
    }
}
