//! The endpoint's configuration (TOML): namespace, event hubs, consumer groups, SAS policies,
//! storage, limits.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use crate::server::limits::Limits;

/// Key of the default policy: a well-known development key, like Azurite's. Never use it for
/// anything reachable from another machine.
pub const DEVELOPMENT_KEY: &str = "SAS_KEY_VALUE";
/// Name of the default policy (the name Azure gives a namespace's root policy).
pub const DEFAULT_POLICY: &str = "RootManageSharedAccessKey";
/// Every event hub has this consumer group.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";

/// The whole endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Namespace name, shown in management responses.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Where to listen; `127.0.0.1:5672` is what the Python SDK's emulator mode dials.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where partitions are stored.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default = "default_hubs", rename = "event_hub")]
    pub event_hubs: Vec<EventHubConfig>,
    #[serde(default = "default_policies", rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    /// What a client may make the endpoint hold (`[limits]`); see [`Limits`].
    #[serde(default)]
    pub limits: Limits,
}

/// One event hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHubConfig {
    pub name: String,
    /// 1 to 32.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Extra consumer groups; `$Default` always exists.
    #[serde(default)]
    pub consumer_groups: Vec<String>,
}

/// A shared access policy: clients sign tokens with its key, and may do what its rights allow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    pub key: String,
    /// `Send`, `Listen` and/or `Manage` (which implies both), as in Event Hubs. Without it, a
    /// policy has every right (like the built-in `RootManageSharedAccessKey`).
    #[serde(default = "all_rights")]
    pub rights: Vec<Right>,
}

/// What a shared access policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Right {
    /// Send events (attach as a sender).
    Send,
    /// Receive events (attach as a receiver).
    Listen,
    /// Everything: implies `Send` and `Listen`.
    Manage,
}

impl PolicyConfig {
    /// Whether the policy grants `need` (`Manage` grants everything).
    pub fn allows(&self, need: Right) -> bool {
        self.rights
            .iter()
            .any(|r| *r == need || *r == Right::Manage)
    }
}

fn all_rights() -> Vec<Right> {
    vec![Right::Manage]
}

/// How partitions are written and kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `always` (fsync every append), `never`, or a number of milliseconds between fsyncs.
    #[serde(default = "default_fsync")]
    pub fsync: String,
    /// Drop events older than this many hours (whole segments at a time).
    #[serde(default)]
    pub retention_hours: Option<u64>,
    /// Keep at most this many bytes per partition (whole segments at a time).
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Segment file size before rolling to a new one.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            fsync: default_fsync(),
            retention_hours: None,
            retention_bytes: None,
            segment_bytes: default_segment_bytes(),
        }
    }
}

fn default_namespace() -> String {
    "hubwasm".into()
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:5672".parse().expect("valid address")
}
fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/share/hubwasm/hub"))
        .unwrap_or_else(|| PathBuf::from("hubwasm-data"))
}
fn default_partitions() -> u32 {
    4
}
fn default_hubs() -> Vec<EventHubConfig> {
    vec![EventHubConfig {
        name: "events".into(),
        partitions: default_partitions(),
        consumer_groups: Vec::new(),
    }]
}
fn default_policies() -> Vec<PolicyConfig> {
    vec![PolicyConfig {
        name: DEFAULT_POLICY.into(),
        key: DEVELOPMENT_KEY.into(),
        rights: all_rights(),
    }]
}
fn default_fsync() -> String {
    "100".into()
}
fn default_segment_bytes() -> u64 {
    64 << 20
}

/// A configuration error, with the TOML line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read hub config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid hub config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid hub config: {0}")]
    Invalid(String),
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            namespace: default_namespace(),
            listen: default_listen(),
            data_dir: default_data_dir(),
            storage: StorageConfig::default(),
            event_hubs: default_hubs(),
            policies: default_policies(),
            limits: Limits::default(),
        }
    }
}

impl HubConfig {
    /// Parse and validate TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let config: HubConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1);
            ConfigError::Parse {
                path: path.to_path_buf(),
                message: match line {
                    Some(line) => format!("line {line}: {}", e.message()),
                    None => e.message().to_string(),
                },
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Check what serde cannot: ranges, duplicates, names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.event_hubs.is_empty() {
            return invalid("at least one [[event_hub]] is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for hub in &self.event_hubs {
            if hub.name.is_empty()
                || !hub
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return invalid(format!(
                    "event hub name `{}` must be letters, digits, `-`, `_` or `.`",
                    hub.name
                ));
            }
            if !names.insert(hub.name.to_ascii_lowercase()) {
                return invalid(format!("event hub `{}` is defined twice", hub.name));
            }
            if !(1..=32).contains(&hub.partitions) {
                return invalid(format!(
                    "event hub `{}` has {} partitions; use 1 to 32",
                    hub.name, hub.partitions
                ));
            }
        }
        if self.policies.is_empty() {
            return invalid("at least one [[policy]] with a name and key is needed".into());
        }
        for policy in &self.policies {
            if policy.name.is_empty() || policy.key.is_empty() {
                return invalid("every [[policy]] needs a non-empty name and key".into());
            }
            if policy.rights.is_empty() {
                return invalid(format!(
                    "policy `{}` has no rights: use any of \"Send\", \"Listen\", \"Manage\"",
                    policy.name
                ));
            }
        }
        if let Some(problem) = self.limits.problem() {
            return invalid(problem);
        }
        self.fsync_policy()?;
        Ok(())
    }

    /// Whether the well-known development key ([`DEVELOPMENT_KEY`]) is served on an address
    /// other machines can reach (anything but loopback): worth a warning at start.
    pub fn development_key_exposed(&self) -> bool {
        !self.listen.ip().is_loopback() && self.policies.iter().any(|p| p.key == DEVELOPMENT_KEY)
    }

    /// The parsed fsync setting.
    pub fn fsync_policy(&self) -> Result<Fsync, ConfigError> {
        match self.storage.fsync.as_str() {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            ms => ms.parse::<u64>().map(Fsync::EveryMillis).map_err(|_| {
                ConfigError::Invalid(format!(
                    "storage.fsync = `{ms}`: use `always`, `never` or a number of milliseconds"
                ))
            }),
        }
    }

    /// The consumer groups of a hub, `$Default` first.
    pub fn consumer_groups(hub: &EventHubConfig) -> Vec<String> {
        let mut groups = vec![DEFAULT_CONSUMER_GROUP.to_string()];
        for g in &hub.consumer_groups {
            if !groups.iter().any(|x| x.eq_ignore_ascii_case(g)) {
                groups.push(g.clone());
            }
        }
        groups
    }
}

/// When appended events reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EveryMillis(u64),
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_full_config_parses() {
        let text = r#"
namespace = "dev"
listen = "127.0.0.1:0"
data_dir = "/tmp/x"

[storage]
fsync = "always"
retention_hours = 24

[[event_hub]]
name = "telemetry"
partitions = 8
consumer_groups = ["analytics"]

[[policy]]
name = "send"
key = "k1"
"#;
        let c = HubConfig::from_toml(text, Path::new("hub.toml")).unwrap();
        assert_eq!(c.event_hubs[0].partitions, 8);
        assert_eq!(
            HubConfig::consumer_groups(&c.event_hubs[0]),
            vec!["$Default", "analytics"]
        );
        assert_eq!(c.fsync_policy().unwrap(), Fsync::Always);
    }

    #[test]
    fn errors_name_the_line_or_the_setting() {
        let err = HubConfig::from_toml("namespace = \"x\"\nbogus = 1\n", Path::new("hub.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hub.toml") && err.contains("line 2"), "{err}");
        let err = HubConfig::from_toml(
            "[[event_hub]]\nname = \"a\"\npartitions = 40\n",
            Path::new("h.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("40 partitions"), "{err}");
        let err = HubConfig::from_toml("[storage]\nfsync = \"sometimes\"\n", Path::new("h.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.fsync"), "{err}");
    }

    #[test]
    fn policies_have_every_right_unless_they_name_theirs() {
        let c = HubConfig::from_toml(
            "[[policy]]\nname = \"all\"\nkey = \"k\"\n\n\
             [[policy]]\nname = \"reader\"\nkey = \"k2\"\nrights = [\"Listen\"]\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert!(c.policies[0].allows(Right::Send) && c.policies[0].allows(Right::Listen));
        assert!(c.policies[1].allows(Right::Listen) && !c.policies[1].allows(Right::Send));
        let err = HubConfig::from_toml(
            "[[policy]]\nname = \"r\"\nkey = \"k\"\nrights = [\"Read\"]\n",
            Path::new("h.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 4") && err.contains("Listen"), "{err}");
        let err = HubConfig::from_toml(
            "[[policy]]\nname = \"r\"\nkey = \"k\"\nrights = []\n",
            Path::new("h.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("policy `r` has no rights"), "{err}");
    }

    #[test]
    fn the_development_key_is_exposed_only_off_loopback() {
        let on = |listen: &str, key: &str| HubConfig {
            listen: listen.parse().unwrap(),
            policies: vec![PolicyConfig {
                name: "p".into(),
                key: key.into(),
                rights: all_rights(),
            }],
            ..HubConfig::default()
        };
        assert!(!on("127.0.0.1:5672", DEVELOPMENT_KEY).development_key_exposed());
        assert!(!on("[::1]:5672", DEVELOPMENT_KEY).development_key_exposed());
        assert!(on("0.0.0.0:5672", DEVELOPMENT_KEY).development_key_exposed());
        assert!(on("192.168.1.4:5672", DEVELOPMENT_KEY).development_key_exposed());
        assert!(!on("0.0.0.0:5672", "a-real-secret").development_key_exposed());
    }

    #[test]
    fn limits_are_read_from_their_section_and_checked() {
        let c = HubConfig::from_toml(
            "[limits]\nmax_connections = 7\nhandshake_timeout_ms = 500\n\
             write_stall_timeout_ms = 2000\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert_eq!(c.limits.max_connections, 7);
        assert_eq!(c.limits.write_stall_timeout_ms, 2000);
        assert_eq!(c.limits.max_tokens, Limits::default().max_tokens);
        let err = HubConfig::from_toml("[limits]\nmax_conections = 7\n", Path::new("h.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("max_conections"),
            "{err}"
        );
        let err = HubConfig::from_toml("[limits]\nmax_frame_bytes = 100\n", Path::new("h.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.max_frame_bytes"), "{err}");
        let err = HubConfig::from_toml(
            "[limits]\nwrite_stall_timeout_ms = 0\n",
            Path::new("h.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("limits.write_stall_timeout_ms"), "{err}");
    }
}
