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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod duration;
mod effects;
mod eventhub;
mod lines;
mod tenant;
mod validate;

pub use effects::*;
pub use eventhub::*;
pub use lines::Lines;
pub use tenant::{
    ConfigValue, Grants, NamedPlugin, SecretSource, TenantConfig, TenantLimits, DEFAULT_TENANT,
};
pub(crate) use validate::BLOB_AUTH_HINT;

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
    pub embedded: Option<EmbeddedConfig>,
    /// The admin API (health, status, metrics, hot swap); off unless this section is present.
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub checkpoints: CheckpointConfig,
    /// Between the one-line summaries (`summary_interval_secs`; 0 = none).
    #[serde(
        rename = "summary_interval_secs",
        default = "default_summary_interval",
        with = "duration::secs"
    )]
    pub summary_interval: Duration,
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

fn default_summary_interval() -> Duration {
    Duration::from_secs(5)
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

/// `[admin]`: the admin API (see `hubwasm run --help` and the README); a key left out takes
/// its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address; default `127.0.0.1:9466`. Anything but loopback exposes the status and
    /// metrics to the network (changes still need the token).
    pub listen: std::net::SocketAddr,
    /// The environment variable holding the bearer token changes (swap) must carry; default
    /// `HUBWASM_ADMIN_TOKEN`. Unset or empty: the API is read-only.
    pub token_env: String,
    /// Directories a swap request may name host paths in (the operator's token only; a
    /// tenant never names a host path). Empty (the default): swaps carry the component's
    /// bytes, or a registry reference.
    pub plugin_dirs: Vec<PathBuf>,
    /// The most bytes a plugin component may have, uploaded or read from a file; default
    /// 64 MiB.
    pub max_component_bytes: u64,
    /// The most bytes a swap's replay events may have; default 16 MiB.
    pub max_replay_bytes: u64,
    /// An upload that sends nothing for this long is refused (`upload_idle_timeout_ms`);
    /// default 30 s.
    #[serde(rename = "upload_idle_timeout_ms", with = "duration::millis")]
    pub upload_idle_timeout: Duration,
    /// An upload must be complete within this (`upload_timeout_ms`); default 10 minutes.
    #[serde(rename = "upload_timeout_ms", with = "duration::millis")]
    pub upload_timeout: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9466)),
            token_env: "HUBWASM_ADMIN_TOKEN".into(),
            plugin_dirs: Vec::new(),
            max_component_bytes: crate::files::DEFAULT_MAX_COMPONENT_BYTES,
            max_replay_bytes: crate::files::DEFAULT_MAX_EVENTS_BYTES,
            upload_idle_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(600),
        }
    }
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
    pub credential: Option<Credential>,
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
        if let (Some(container_url), Some(Credential::Entra)) =
            (&self.container_url, self.credential)
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
            let reference = crate::registry::reference::as_reference(p).is_some();
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
        assert_eq!(hub.balancing.update_interval, Duration::from_secs(5));
        assert_eq!(hub.balancing.ownership_expiry, Duration::from_secs(10));
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
    /// [`MINIMAL`] with `extra` after it, loaded as `/etc/hubwasm/x.toml`; the error as text.
    fn minimal_with(extra: &str) -> Result<RunConfig, String> {
        let text = format!("{MINIMAL}{extra}\n");
        RunConfig::parse(&text, Path::new("/etc/hubwasm/x.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn effect_settings_are_checked() {
        let parse = |extra: &str| minimal_with(extra);
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
        let parse = |extra: &str| minimal_with(&format!("[eventhub.dedupe]\n{extra}"));
        let ok = parse("key = \"json:event_id\"").unwrap();
        // Without a key the store serves the plugin's first-seen only.
        assert!(parse("").unwrap().event_hubs[0]
            .dedupe
            .as_ref()
            .unwrap()
            .key
            .is_none());
        let dedupe = ok.event_hubs[0].dedupe.as_ref().unwrap();
        assert_eq!(dedupe.ttl, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(
            dedupe.local_path(),
            PathBuf::from("/etc/hubwasm/.hubwasm/dedupe.sqlite")
        );
        // Cross-field rules name the [eventhub.dedupe] table's line, syntax and types their own.
        let k = "key = \"json:id\"\n";
        for (extra, line, says) in [
            // The key is parsed with the file: a bad one is refused at its own line.
            (
                "key = \"event_id\"".to_string(),
                7,
                "`event_id`: use `json:<field>`",
            ),
            (
                "key = \"json:\"".to_string(),
                7,
                "`json:`: use `json:<field>`",
            ),
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
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
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
