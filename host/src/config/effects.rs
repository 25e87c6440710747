//! What happens besides the verdict: `[eventhub.dedupe]`, `[eventhub.state]` and
//! `[[eventhub.output]]`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Credential, EventHubAddress};
use crate::event::{Event, PropertyValue};

/// `[eventhub.dedupe]`: the "second checkpoint". Events whose key was recorded are skipped
/// before they reach the plugin; the keys of handled events are recorded before the checkpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Where the key comes from: `json:<field>` (a top-level field of a JSON body),
    /// `property:<name>`, or `message-id`. Events without one are not deduplicated. Left out,
    /// the host skips nothing itself and the store serves the plugin's `first-seen` only.
    pub key: Option<KeySource>,
    /// How long a key is remembered (`ttl_secs`); default 7 days (Event Hubs' longest standard
    /// retention: a replay from the earliest event finds every key still recorded).
    #[serde(
        rename = "ttl_secs",
        default = "default_dedupe_ttl",
        with = "super::duration::secs"
    )]
    pub ttl: Duration,
    /// `local` (SQLite in `path`) or `redis` (at `url`).
    #[serde(default)]
    pub store: DedupeStoreKind,
    /// The SQLite file (relative to the config file); default `.hubwasm/dedupe.sqlite`.
    pub path: Option<PathBuf>,
    /// The Redis URL (`redis://host:port[/db]`, `rediss://` for TLS), for `store = "redis"`.
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

fn default_dedupe_ttl() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl DedupeConfig {
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
    pub path: Option<PathBuf>,
    /// The Redis URL, for `store = "redis"`.
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
    pub event_hub: Option<String>,
    /// `Endpoint=sb://...;SharedAccessKeyName=..;SharedAccessKey=..[;EntityPath=..]`.
    pub connection_string: Option<String>,
    /// A namespace reached with a Microsoft Entra identity (`credential = "entra"`).
    pub namespace: Option<String>,
    pub credential: Option<Credential>,
    /// An event hub of this process's embedded endpoint (`[embedded]`).
    #[serde(default)]
    pub embedded: bool,
    /// Where the output is, parsed once at load; not a TOML key.
    #[serde(skip)]
    pub(crate) address: Option<EventHubAddress>,
}

impl OutputConfig {
    /// The event hub named by `event_hub`, else by the output's name; a connection string's
    /// EntityPath wins over both (see [`OutputConfig::event_hub_name`]).
    pub fn target(&self) -> &str {
        self.event_hub.as_deref().unwrap_or(&self.name)
    }

    /// The event hub it really sends to (what a tenant must be granted).
    pub fn event_hub_name(&self) -> String {
        match self.address() {
            EventHubAddress::ConnectionString { parsed, .. } => parsed.entity_path.clone(),
            _ => self.target().to_string(),
        }
    }

    /// Where the output is (set when the config is loaded).
    pub fn address(&self) -> &EventHubAddress {
        self.address.as_ref().unwrap_or(&EventHubAddress::Embedded)
    }
}

/// Where an event's dedupe key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum KeySource {
    /// A top-level field of a JSON object body (a string, or a number as written).
    Json(String),
    /// An application property.
    Property(String),
    /// The AMQP message id.
    MessageId,
}

/// The key syntax, for config errors.
pub const KEY_SYNTAX: &str = "use `json:<field>` (a top-level field of a JSON body, e.g. \
                              json:event_id), `property:<name>` or `message-id`";

impl KeySource {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}`: {KEY_SYNTAX}");
        if text == "message-id" {
            return Ok(KeySource::MessageId);
        }
        let (kind, name) = text.split_once(':').ok_or_else(bad)?;
        if name.is_empty() || name.len() > 256 {
            return Err(bad());
        }
        match kind {
            "json" => Ok(KeySource::Json(name.to_string())),
            "property" => Ok(KeySource::Property(name.to_string())),
            _ => Err(bad()),
        }
    }

    /// The event's key; `None` when the event has none (it is then not deduplicated).
    pub fn key(&self, event: &Event) -> Option<String> {
        match self {
            KeySource::MessageId => event.message_id.clone(),
            KeySource::Property(name) => {
                event
                    .properties
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| match v {
                        PropertyValue::Text(t) | PropertyValue::Uuid(t) => Some(t.clone()),
                        PropertyValue::Int(i) => Some(i.to_string()),
                        PropertyValue::Bool(b) => Some(b.to_string()),
                        PropertyValue::Double(d) => Some(d.to_string()),
                        PropertyValue::Timestamp(t) => Some(t.to_string()),
                        PropertyValue::Binary(b) => {
                            Some(b.iter().map(|x| format!("{x:02x}")).collect())
                        }
                        PropertyValue::Null => None,
                    })
            }
            KeySource::Json(field) => {
                // Only the one field is kept; the rest of the body is skipped, not built.
                #[derive(serde::Deserialize)]
                struct Field<'a>(
                    #[serde(borrow)]
                    std::collections::HashMap<&'a str, &'a serde_json::value::RawValue>,
                );
                let Field(fields) = serde_json::from_slice(&event.body).ok()?;
                let raw = fields.get(field.as_str())?.get();
                match serde_json::from_str::<serde_json::Value>(raw).ok()? {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            }
        }
    }
}

impl TryFrom<String> for KeySource {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Json(field) => write!(f, "json:{field}"),
            KeySource::Property(name) => write!(f, "property:{name}"),
            KeySource::MessageId => f.write_str("message-id"),
        }
    }
}
