//! One `[[eventhub]]`: where it is, how it is called, balanced, failed, swapped and rolled
//! back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::backoff::Backoff;
use crate::plugin::http::Origin;
use crate::plugin::Limits;

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

/// Retry and failure policy of one event hub's plugin; a key left out takes its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailureConfig {
    pub policy: FailurePolicy,
    /// Calls of the plugin on a failing event before the policy applies (≥ 1); default 5.
    pub max_attempts: u32,
    /// The first wait before a retry (`initial_backoff_ms`); default 200 ms.
    #[serde(rename = "initial_backoff_ms", with = "super::duration::millis")]
    pub initial_backoff: Duration,
    /// The longest wait between retries (`max_backoff_ms`); default 30 s.
    #[serde(rename = "max_backoff_ms", with = "super::duration::millis")]
    pub max_backoff: Duration,
}

impl Default for FailureConfig {
    fn default() -> Self {
        Self {
            policy: FailurePolicy::default(),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl FailureConfig {
    /// The retry curve: from `initial_backoff_ms`, doubling, capped at `max_backoff_ms`.
    pub fn backoff_curve(&self) -> Backoff {
        Backoff::new(self.initial_backoff, self.max_backoff)
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
    EventHub {
        connection_string: String,
        /// What `connection_string` says, parsed when the config is loaded; not a TOML key.
        #[serde(skip)]
        parsed: Option<crate::connection::ConnectionString>,
    },
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

/// Load balancing through the SDK's `EventProcessor`; a key left out takes its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancingConfig {
    pub strategy: Strategy,
    /// How often ownership is renewed and rebalanced (`update_interval_ms`); default 5 s.
    #[serde(rename = "update_interval_ms", with = "super::duration::millis")]
    pub update_interval: Duration,
    /// An ownership not renewed for this long may be taken over (`ownership_expiry_ms`);
    /// default 10 s.
    #[serde(rename = "ownership_expiry_ms", with = "super::duration::millis")]
    pub ownership_expiry: Duration,
    /// Events the SDK prefetches per partition (link credit); default 300.
    pub prefetch: u32,
    /// How often a partition reads its ownership record, to stop before its next batch once
    /// another instance has taken it (see `processor::fence`). 0: before every batch, waiting
    /// for the read (a steal costs the batch in flight; one store read per batch). Otherwise in
    /// the background at most this often (a steal costs at most this long's events); default
    /// 1 s.
    #[serde(rename = "ownership_check_ms", with = "super::duration::millis")]
    pub ownership_check: Duration,
}

/// How the SDK's processor claims partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Claim one partition per update interval, until balanced.
    #[default]
    Balanced,
    /// Claim every partition it may at once.
    Greedy,
}

impl Default for BalancingConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            // The seed's consumer uses 5 s and 10 s.
            update_interval: Duration::from_secs(5),
            ownership_expiry: Duration::from_secs(10),
            prefetch: 300,
            ownership_check: Duration::from_secs(1),
        }
    }
}

/// `[eventhub.swap]`: how new plugin versions arrive and are checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapConfig {
    /// Sample events (.jsonl, one body per line, as `hubwasm plugin test` reads them) every new
    /// version must handle without a failure before it is swapped in.
    pub replay_events: Option<PathBuf>,
    /// Watch the plugin file: when it is replaced (and stays unchanged for a second), swap the
    /// new file in, checked as any swap. Off by default.
    #[serde(default)]
    pub watch: bool,
}

/// `[eventhub.rollback]`: when a swapped-in plugin version is taken back by itself; a key
/// left out takes its default.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackConfig {
    /// Roll a new version back when it fails too often after a swap (default true).
    pub automatic: bool,
    /// The share of the new version's calls on events that may fail (0 < rate <= 1) before it
    /// is rolled back; default 0.5.
    pub failure_rate: f64,
    /// How long after a swap the new version is watched (`window_ms`); default 60 s.
    #[serde(rename = "window_ms", with = "super::duration::millis")]
    pub window: Duration,
    /// Failures needed before the rate counts (a single poison event is not a storm); default 20.
    pub min_failures: u64,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            automatic: true,
            failure_rate: 0.5,
            window: Duration::from_secs(60),
            min_failures: 20,
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
    pub credential: Option<Credential>,
    /// Use the embedded endpoint of this process (`[embedded]`).
    #[serde(default)]
    pub embedded: bool,
    #[serde(default = "default_consumer_group")]
    pub consumer_group: String,
    /// The tenant the event hub's processing belongs to; default: the named plugin's tenant,
    /// else `default`.
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
    pub limits: Option<Limits>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "default_max_batch")]
    pub max_batch_size: usize,
    /// How long a batch waits to fill up (`max_wait_ms`).
    #[serde(
        rename = "max_wait_ms",
        default = "default_max_wait",
        with = "super::duration::millis"
    )]
    pub max_wait: Duration,
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
    pub dedupe: Option<DedupeConfig>,
    /// `[eventhub.state]`: keyed state for the plugin.
    pub state: Option<StateConfig>,
    /// `[[eventhub.output]]`: where the plugin may emit events.
    #[serde(default)]
    pub output: Vec<OutputConfig>,
    /// Origins the plugin may reach with outbound HTTP (`https://api.example.com`,
    /// `http://127.0.0.1:8080`); none by default.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Origin>,
    /// Where the event hub is: parsed once at load from `connection_string`, `namespace` or
    /// `embedded` (see [`EventHubConfig::address`]); not a TOML key.
    #[serde(skip)]
    pub(crate) address: Option<EventHubAddress>,
}

/// Where an event hub is, parsed once at load; every consumer of it branches on this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventHubAddress {
    /// A connection string: its text (with `EntityPath`) and what it says.
    ConnectionString {
        text: String,
        parsed: crate::connection::ConnectionString,
    },
    /// A fully qualified namespace reached with a Microsoft Entra identity.
    Entra { namespace: String },
    /// An event hub of this process's embedded endpoint (`[embedded]`).
    Embedded,
}

impl EventHubAddress {
    /// From the three ways a config can name an event hub `name`: exactly one must be given;
    /// `Err` says what is wrong, for the caller to place.
    pub(crate) fn from_settings(
        name: &str,
        connection_string: Option<&str>,
        namespace: Option<&str>,
        credential: Option<Credential>,
        embedded: bool,
    ) -> Result<Self, (&'static str, String)> {
        match (connection_string, namespace, embedded) {
            (Some(cs), None, false) => {
                let text = with_entity(cs, name);
                let parsed = crate::connection::ConnectionString::parse(&text)
                    .map_err(|e| ("connection_string", e.to_string()))?;
                Ok(Self::ConnectionString { text, parsed })
            }
            (None, Some(namespace), false) => match credential {
                Some(Credential::Entra) => Ok(Self::Entra {
                    namespace: namespace.to_string(),
                }),
                None => Err((
                    "credential",
                    "with namespace, set credential = \"entra\" (Microsoft Entra identity)".into(),
                )),
            },
            (None, None, true) => Ok(Self::Embedded),
            _ => Err((
                "connection_string",
                "give exactly one of connection_string, namespace (with credential = \"entra\") \
                 or embedded = true"
                    .into(),
            )),
        }
    }

    /// The host part, lowercase, that tells namespaces apart (for duplicates).
    pub(crate) fn source_key(&self) -> String {
        match self {
            Self::ConnectionString { parsed, .. } => parsed.host.to_ascii_lowercase(),
            Self::Entra { namespace } => namespace.to_ascii_lowercase(),
            Self::Embedded => "embedded".into(),
        }
    }
}

/// How a namespace or container is reached without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Credential {
    /// A Microsoft Entra identity: workload identity, managed identity or the Azure CLI login.
    Entra,
}

fn default_consumer_group() -> String {
    "$Default".into()
}
fn default_max_batch() -> usize {
    100
}
fn default_max_wait() -> Duration {
    Duration::from_millis(500)
}

impl EventHubConfig {
    /// The tenant this event hub's processing belongs to.
    pub fn tenant_name(&self) -> &str {
        self.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }

    /// Where the event hub is (set when the config is loaded).
    pub fn address(&self) -> &EventHubAddress {
        self.address.as_ref().unwrap_or(&EventHubAddress::Embedded)
    }
}
