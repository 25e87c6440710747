//! Tenants and named plugins: `[[tenant]]` (limits, grants, admin token) and `[[plugin]]`
//! (a component with its config and limits, owned by a tenant) that `[[eventhub]]` refers to.
//!
//! ```toml
//! [[tenant]]
//! name = "acme"
//! admin_token_env = "ACME_ADMIN_TOKEN"   # this tenant's admin token: its event hubs only
//! [tenant.limits]
//! memory_bytes = 67108864                # per plugin instance (ceiling and default)
//! timeout = 1000                         # ms of run time per call (ceiling and default)
//! max_in_flight = 2                      # plugin calls at once across its partitions
//! events_per_sec = 1000                  # rate limits, applied as backpressure
//! mb_per_sec = 1.0
//! [tenant.grants]                        # nothing is granted unless listed here
//! secrets = { api_key = { env = "ACME_API_KEY" } }
//!
//! [[plugin]]
//! name = "acme-filter"
//! tenant = "acme"
//! path = "filter.wasm"
//! config = { min_value = "50", api_key = { secret = "api_key" } }
//!
//! [[eventhub]]
//! name = "orders"
//! plugin = "acme-filter"                 # a [[plugin]] name, or a .wasm path
//! ```
//!
//! Event hubs that name no tenant belong to the tenant `default` (unlimited unless a
//! `[[tenant]]` of that name sets limits).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::plugin::Limits;

/// The tenant of event hubs and plugins that name none.
pub const DEFAULT_TENANT: &str = "default";

/// `[[tenant]]`: whose plugins these are, what they may use, and how much.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    /// The environment variable holding this tenant's admin token: it reads and changes only
    /// this tenant's event hubs (the `[admin]` token reads and changes everything).
    pub admin_token_env: Option<String>,
    #[serde(default)]
    pub limits: TenantLimits,
    #[serde(default)]
    pub grants: Grants,
}

/// `[tenant.limits]`; each absent limit is unlimited (memory and run time per call then fall
/// back to the plugin defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Largest memory one plugin instance of the tenant may grow to, in bytes.
    pub memory_bytes: Option<u64>,
    /// Longest one plugin call may run, in milliseconds (epoch deadline, then wall clock).
    #[serde(default, rename = "timeout", with = "opt_millis")]
    pub timeout: Option<Duration>,
    /// Plugin calls (batches) in flight at once across all the tenant's partitions.
    pub max_in_flight: Option<u32>,
    /// Events per second into the tenant's plugins (1 000 is one throughput unit).
    pub events_per_sec: Option<f64>,
    /// Megabytes (10^6 bytes of event bodies) per second into the tenant's plugins.
    pub mb_per_sec: Option<f64>,
}

impl TenantLimits {
    /// The limits a plugin of this tenant runs with: its own, else the tenant's, else the
    /// defaults.
    pub fn plugin_limits(&self, own: Option<Limits>) -> Limits {
        own.unwrap_or(Limits {
            memory_bytes: self.memory_bytes.unwrap_or(Limits::DEFAULT_MEMORY),
            timeout: self.timeout.unwrap_or(Limits::DEFAULT_TIMEOUT),
            fuel: None,
        })
    }
}

/// `[tenant.grants]`: what the tenant's plugins may receive and do. Nothing is granted by
/// default: secrets, the event hubs its plugins may emit to, the origins they may reach over
/// HTTP, keyed state and dedupe stores.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Secrets by name, each read from where the operator keeps it; a plugin's config refers to
    /// one as `{ secret = "name" }`.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Event hubs the tenant's `[[eventhub.output]]`s may send to (by event hub name).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Origins the tenant's plugins may be allowed to reach (`allowed_outbound_hosts`).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<crate::plugin::http::Origin>,
    /// Whether the tenant's event hubs may have `[eventhub.state]` (each partition's state is
    /// its own: the tenant's consumer group is in its scope).
    #[serde(default)]
    pub state: bool,
    /// Whether the tenant's event hubs may have `[eventhub.dedupe]` (keys scoped to its
    /// consumer group).
    #[serde(default)]
    pub dedupe: bool,
    /// OCI registries (`host[:port]`) or repositories (`host[:port]/path`) the tenant's plugins
    /// may come from, in its config and in its swaps; none by default.
    #[serde(default)]
    pub registries: Vec<String>,
}

/// The largest secret file read (a key or a token, not a document).
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Where a granted secret's value comes from (never the config file itself).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable of the host process.
    Env(String),
    /// A file (its content, without a trailing newline), relative to the config file.
    File(PathBuf),
}

impl SecretSource {
    /// The secret's value, or why it cannot be read (without the value).
    pub fn read(&self) -> Result<String, String> {
        match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(_) => Err(format!("environment variable {var} is not set")),
            },
            SecretSource::File(path) => {
                let size = std::fs::metadata(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                    .len();
                if size > MAX_SECRET_BYTES {
                    return Err(format!(
                        "{} has {size} bytes; a secret file may have at most {MAX_SECRET_BYTES} \
                         (is it the right file?)",
                        path.display()
                    ));
                }
                std::fs::read_to_string(path)
                    .map(|v| v.trim_end_matches(['\r', '\n']).to_string())
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
        }
    }
}

/// One value of a plugin's config: text, or a secret granted to the plugin's tenant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    Text(String),
    Secret { secret: String },
}

impl From<&str> for ConfigValue {
    fn from(text: &str) -> Self {
        ConfigValue::Text(text.to_string())
    }
}

/// `[[plugin]]`: a component with its config and limits, owned by a tenant, that event hubs
/// name instead of repeating them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPlugin {
    pub name: String,
    /// The owning tenant; default `default`.
    pub tenant: Option<String>,
    /// The component (`.wasm`), relative to the config file.
    pub path: PathBuf,
    /// Passed to the plugin's `init`.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    /// Within the tenant's limits; default: the tenant's.
    pub limits: Option<Limits>,
    /// Origins the plugin may reach with outbound HTTP (within the tenant's grants).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<crate::plugin::http::Origin>,
}

mod opt_millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Some(Duration::from_millis(u64::deserialize(d)?)))
    }
}

impl super::RunConfig {
    /// A declared tenant's event hub uses only the effects granted to the tenant.
    fn check_effect_grants(
        &self,
        i: usize,
        hub: &super::EventHubConfig,
        tenant: &TenantConfig,
        origin: &dyn Fn(&'static str) -> (&'static str, usize, &'static str),
    ) -> Result<(), super::ConfigError> {
        let name = &tenant.name;
        let at = |field: &str| format!("eventhub[{i}] ({}).{field}", hub.name);
        for output in &hub.output {
            let target = output.event_hub_name();
            if !tenant.grants.outputs.contains(&target) {
                return Err(self.invalid_at(
                    ("eventhub", i, "output"),
                    at(&format!("output.{}", output.name)),
                    format!(
                        "tenant {name} is not granted event hub `{target}` as an output: add it \
                         to [tenant.grants] outputs"
                    ),
                ));
            }
        }
        let granted = &tenant.grants.allowed_outbound_hosts;
        for host in &hub.allowed_outbound_hosts {
            if !granted.contains(host) {
                return Err(self.invalid_at(
                    origin("allowed_outbound_hosts"),
                    at("allowed_outbound_hosts"),
                    format!(
                        "`{host}` is not granted to tenant {name}: add it to [tenant.grants] \
                         allowed_outbound_hosts"
                    ),
                ));
            }
        }
        let denied = |table: &str, grant: &str| {
            self.invalid_at(
                ("eventhub", i, table),
                at(table),
                format!(
                    "tenant {name} is not granted [eventhub.{table}]: set {grant} = true in \
                     [tenant.grants]"
                ),
            )
        };
        if hub.state.is_some() && !tenant.grants.state {
            return Err(denied("state", "state"));
        }
        if hub.dedupe.is_some() && !tenant.grants.dedupe {
            return Err(denied("dedupe", "dedupe"));
        }
        Ok(())
    }

    /// The tenant called `name`, if the config has a `[[tenant]]` of that name.
    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// Every tenant that has event hubs or is configured: the `[[tenant]]` tables, then
    /// `default` if event hubs name no tenant and no `[[tenant]]` is called that.
    pub fn tenant_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tenants.iter().map(|t| t.name.clone()).collect();
        for hub in &self.event_hubs {
            if !names.iter().any(|n| n == hub.tenant_name()) {
                names.push(hub.tenant_name().to_string());
            }
        }
        names
    }

    /// An event hub's plugin config with its secrets read (for the plugin's `init`).
    pub fn plugin_config_of(
        &self,
        hub: &super::EventHubConfig,
    ) -> Result<Vec<(String, String)>, super::ConfigError> {
        let tenant = self.tenant(hub.tenant_name());
        hub.plugin_config
            .iter()
            .map(|(key, value)| match value {
                ConfigValue::Text(text) => Ok((key.clone(), text.clone())),
                ConfigValue::Secret { secret } => {
                    let source = tenant
                        .and_then(|t| t.grants.secrets.get(secret))
                        .ok_or_else(|| {
                            self.invalid(
                                format!("eventhub ({}).plugin_config.{key}", hub.name),
                                format!(
                                    "secret `{secret}` is not granted to tenant {}",
                                    hub.tenant_name()
                                ),
                            )
                        })?;
                    let value = source.read().map_err(|why| {
                        self.invalid(
                            format!("tenant {}: grants.secrets.{secret}", hub.tenant_name()),
                            why,
                        )
                    })?;
                    Ok((key.clone(), value))
                }
            })
            .collect()
    }

    /// An event hub without limits of its own (or of its named plugin) runs its plugin with
    /// the tenant's memory and run time per call.
    pub(super) fn apply_tenant_limits(&mut self) {
        for i in 0..self.event_hubs.len() {
            let hub = &self.event_hubs[i];
            if hub.limits.is_some() {
                continue;
            }
            if let Some(tenant) = self.tenant(hub.tenant_name()) {
                let limits = tenant.limits.plugin_limits(None);
                self.event_hubs[i].limits = Some(limits);
            }
        }
    }

    /// Event hubs that name a `[[plugin]]` take its component, config, limits and tenant.
    pub(super) fn use_named_plugins(&mut self) -> Result<(), super::ConfigError> {
        for i in 0..self.event_hubs.len() {
            let hub = &self.event_hubs[i];
            let Some(named) = hub
                .plugin
                .to_str()
                .and_then(|name| self.plugins.iter().find(|p| p.name == name))
            else {
                continue;
            };
            let at = |field: &str| format!("eventhub[{i}] ({}).{field}", hub.name);
            if !hub.plugin_config.is_empty()
                || hub.limits.is_some()
                || !hub.allowed_outbound_hosts.is_empty()
            {
                let key = if hub.limits.is_some() {
                    "limits"
                } else if !hub.allowed_outbound_hosts.is_empty() {
                    "allowed_outbound_hosts"
                } else {
                    "plugin_config"
                };
                return Err(self.invalid_at(
                    ("eventhub", i, key),
                    at(key),
                    format!(
                        "the event hub names the plugin `{}`, which carries its own config and \
                         limits: set them in its [[plugin]] table, or give a .wasm path here",
                        named.name
                    ),
                ));
            }
            let owner = named.tenant.as_deref().unwrap_or(DEFAULT_TENANT);
            if hub.tenant.as_deref().is_some_and(|t| t != owner) {
                return Err(self.invalid_at(
                    ("eventhub", i, "tenant"),
                    at("tenant"),
                    format!(
                        "plugin `{}` belongs to tenant {owner}, not {}: a tenant's event hubs \
                         run only its own plugins",
                        named.name,
                        hub.tenant_name()
                    ),
                ));
            }
            let named = named.clone();
            let hub = &mut self.event_hubs[i];
            hub.tenant = Some(owner.to_string());
            hub.plugin = named.path;
            hub.plugin_name = Some(named.name);
            hub.plugin_config = named.config;
            hub.limits = named.limits;
            hub.allowed_outbound_hosts = named.allowed_outbound_hosts;
        }
        Ok(())
    }

    /// The name of the `index`th `[[section]]`: usable in labels and URLs, and not one of the
    /// `earlier` tables' names.
    fn check_name(
        &self,
        section: &str,
        index: usize,
        name: &str,
        earlier: &[&str],
    ) -> Result<(), super::ConfigError> {
        let setting = format!("{section}[{index}] ({name}).name");
        if !valid_name(name) {
            return Err(self.invalid_at(
                (section, index, "name"),
                setting,
                "use 1 to 64 letters, digits, `-` or `_`",
            ));
        }
        if let Some(j) = earlier.iter().position(|e| *e == name) {
            return Err(self.invalid_at(
                (section, index, "name"),
                setting,
                format!("{section}[{j}] has this name too; {section} names are unique"),
            ));
        }
        Ok(())
    }

    /// Tenants, named plugins and grants: every reference resolves, nothing exceeds the limits
    /// of its tenant, every grant exists.
    pub(super) fn validate_tenants(&self) -> Result<(), super::ConfigError> {
        for (i, tenant) in self.tenants.iter().enumerate() {
            let at = |field: &str| format!("tenant[{i}] ({}).{field}", tenant.name);
            let earlier: Vec<&str> = self.tenants[..i].iter().map(|t| t.name.as_str()).collect();
            self.check_name("tenant", i, &tenant.name, &earlier)?;
            let limits = &tenant.limits;
            let rate_ok = |r: Option<f64>| r.is_none_or(|r| r.is_finite() && r > 0.0);
            if !rate_ok(limits.events_per_sec) {
                return Err(self.invalid_at(
                    ("tenant", i, "limits"),
                    at("limits.events_per_sec"),
                    "give a number of events per second above 0, e.g. 1000 (one throughput unit)",
                ));
            }
            if !rate_ok(limits.mb_per_sec) {
                return Err(self.invalid_at(
                    ("tenant", i, "limits"),
                    at("limits.mb_per_sec"),
                    "give megabytes per second above 0, e.g. 1.0 (one throughput unit)",
                ));
            }
            if limits.max_in_flight == Some(0) {
                return Err(self.invalid_at(
                    ("tenant", i, "limits"),
                    at("limits.max_in_flight"),
                    "must be at least 1",
                ));
            }
            if limits.timeout == Some(Duration::ZERO) || limits.memory_bytes == Some(0) {
                return Err(self.invalid_at(
                    ("tenant", i, "limits"),
                    at("limits"),
                    "memory_bytes and timeout must be above 0",
                ));
            }
            for (name, source) in &tenant.grants.secrets {
                if let Err(why) = source.read() {
                    return Err(self.invalid_at(
                        ("tenant", i, "grants"),
                        at(&format!("grants.secrets.{name}")),
                        format!("grants a secret that does not exist: {why}"),
                    ));
                }
            }
            if let Some(var) = &tenant.admin_token_env {
                if var.trim().is_empty() {
                    return Err(self.invalid_at(
                        ("tenant", i, "admin_token_env"),
                        at("admin_token_env"),
                        "name an environment variable, or leave the key out",
                    ));
                }
            }
        }
        let known = |name: &str| name == DEFAULT_TENANT || self.tenant(name).is_some();
        for (i, plugin) in self.plugins.iter().enumerate() {
            let at = |field: &str| format!("plugin[{i}] ({}).{field}", plugin.name);
            let earlier: Vec<&str> = self.plugins[..i].iter().map(|p| p.name.as_str()).collect();
            self.check_name("plugin", i, &plugin.name, &earlier)?;
            if let Some(t) = &plugin.tenant {
                if !known(t) {
                    return Err(self.invalid_at(
                        ("plugin", i, "tenant"),
                        at("tenant"),
                        format!("there is no [[tenant]] named `{t}`"),
                    ));
                }
            }
        }
        for (i, hub) in self.event_hubs.iter().enumerate() {
            let at = |field: &str| format!("eventhub[{i}] ({}).{field}", hub.name);
            let tenant_name = hub.tenant_name();
            if !known(tenant_name) {
                return Err(self.invalid_at(
                    ("eventhub", i, "tenant"),
                    at("tenant"),
                    format!("there is no [[tenant]] named `{tenant_name}`"),
                ));
            }
            // Where this hub's plugin settings were written: its [[plugin]] table or itself.
            let origin = |key: &'static str| match &hub.plugin_name {
                Some(name) => {
                    let j = self
                        .plugins
                        .iter()
                        .position(|p| &p.name == name)
                        .unwrap_or(0);
                    (
                        "plugin",
                        j,
                        if key == "plugin_config" {
                            "config"
                        } else {
                            key
                        },
                    )
                }
                None => ("eventhub", i, key),
            };
            let what = match &hub.plugin_name {
                Some(name) => format!("plugin ({name})"),
                None => at("plugin_config"),
            };
            let tenant = self.tenant(tenant_name);
            for (key, value) in &hub.plugin_config {
                if let ConfigValue::Secret { secret } = value {
                    if tenant.is_none_or(|t| !t.grants.secrets.contains_key(secret)) {
                        return Err(self.invalid_at(
                            origin("plugin_config"),
                            format!("{what}.{key}"),
                            format!(
                                "secret `{secret}` is not granted to tenant {tenant_name}: add it \
                                 to [tenant.grants] secrets"
                            ),
                        ));
                    }
                }
            }
            if let Some(tenant) = tenant {
                self.check_effect_grants(i, hub, tenant, &origin)?;
            }
            if let (Some(tenant), Some(own)) = (tenant, hub.limits) {
                let ceiling = &tenant.limits;
                // (setting, this hub's value, the tenant's ceiling), as shown.
                let above = if ceiling.memory_bytes.is_some_and(|m| own.memory_bytes > m) {
                    let ceiling = ceiling.memory_bytes.unwrap_or_default();
                    Some((
                        "memory_bytes",
                        own.memory_bytes.to_string(),
                        ceiling.to_string(),
                    ))
                } else if ceiling.timeout.is_some_and(|t| own.timeout > t) {
                    let ceiling = ceiling.timeout.unwrap_or_default().as_millis();
                    let own = own.timeout.as_millis();
                    Some(("timeout", format!("{own} ms"), format!("{ceiling} ms")))
                } else {
                    None
                };
                if let Some((setting, own, ceiling)) = above {
                    return Err(self.invalid_at(
                        origin("limits"),
                        format!("{what}: limits.{setting}"),
                        format!("{own} is above tenant {tenant_name}'s {setting} ({ceiling})"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Tenant and plugin names appear in labels, URLs and file names.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests;
