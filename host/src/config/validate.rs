//! Every cross-field rule of a config, in one place: what serde cannot check alone. Each error
//! names the setting and, where the file tells, its line.

use super::*;

impl RunConfig {
    pub(crate) fn invalid(
        &self,
        setting: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
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

    /// Where every event hub and output is, parsed once: exactly one of a connection string, a
    /// namespace with `credential = "entra"`, or the embedded endpoint.
    fn resolve_addresses(&mut self) -> Result<(), ConfigError> {
        let mut hubs = Vec::new();
        for (i, hub) in self.event_hubs.iter().enumerate() {
            let at = |field: &str| format!("eventhub[{i}] ({}).{field}", hub.name);
            let address = EventHubAddress::from_settings(
                &hub.name,
                hub.connection_string.as_deref(),
                hub.namespace.as_deref(),
                hub.credential,
                hub.embedded,
            )
            .map_err(|(key, why)| self.invalid(at(key), why))?;
            let mut outputs = Vec::new();
            for output in &hub.output {
                let here = ("eventhub", i, "output");
                let address = EventHubAddress::from_settings(
                    output.target(),
                    output.connection_string.as_deref(),
                    output.namespace.as_deref(),
                    output.credential,
                    output.embedded,
                )
                .map_err(|(key, why)| {
                    let why = match key {
                        "credential" => "namespace needs credential = \"entra\"".to_string(),
                        _ => why,
                    };
                    self.invalid_at(
                        here,
                        format!("event hub {}: output.{key}", hub.name),
                        format!("output `{}`: {why}", output.name),
                    )
                })?;
                outputs.push(address);
            }
            let dead_letter = match &hub.dead_letter {
                DeadLetterConfig::EventHub {
                    connection_string, ..
                } => Some(
                    crate::connection::ConnectionString::parse(connection_string).map_err(|e| {
                        self.invalid(at("dead_letter.connection_string"), e.to_string())
                    })?,
                ),
                _ => None,
            };
            hubs.push((address, outputs, dead_letter));
        }
        for (hub, (address, outputs, dead_letter)) in self.event_hubs.iter_mut().zip(hubs) {
            hub.address = Some(address);
            if let DeadLetterConfig::EventHub { parsed, .. } = &mut hub.dead_letter {
                *parsed = dead_letter;
            }
            for (output, address) in hub.output.iter_mut().zip(outputs) {
                output.address = Some(address);
            }
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

    /// Cross-field rules serde cannot express; fills in what they parse (the addresses).
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.resolve_addresses()?;
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
                    hub.address().source_key(),
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
            if hub.embedded && self.embedded.is_none() {
                return Err(self.invalid(
                    at("embedded"),
                    "embedded = true needs an [embedded] section (it may be empty)",
                ));
            }
            if hub.max_batch_size == 0 {
                return Err(self.invalid(at("max_batch_size"), "must be at least 1"));
            }
            if hub.failure.max_attempts == 0 {
                return Err(self.invalid(at("failure.max_attempts"), "must be at least 1"));
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
                self.check_store(here, &at("dedupe.url"), dedupe.store, &dedupe.url)?;
                if dedupe.ttl.is_zero() {
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
            if rollback.min_failures == 0 {
                return Err(self.invalid(at("rollback.min_failures"), "must be at least 1"));
            }
            if hub.balancing.ownership_expiry <= hub.balancing.update_interval {
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
        }
        self.validate_admin()?;
        self.validate_registries()?;
        self.validate_tenants()
    }

    /// Registry references parse, and a tenant's are within its `registries` grant.
    fn validate_registries(&self) -> Result<(), ConfigError> {
        for (i, hub) in self.event_hubs.iter().enumerate() {
            let Some(text) = crate::registry::reference::as_reference(&hub.plugin) else {
                continue;
            };
            let at = format!("eventhub[{i}] ({}).plugin", hub.name);
            let reference = crate::registry::reference::OciRef::parse(text).map_err(|e| {
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
            ("upload_idle_timeout_ms", admin.upload_idle_timeout),
            ("upload_timeout_ms", admin.upload_timeout),
        ] {
            if value.is_zero() {
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
}

/// The largest upload bound a config may set.
const MAX_UPLOAD_BYTES: u64 = 1 << 30;

/// What a Blob container config needs (for config errors).
pub(crate) const BLOB_AUTH_HINT: &str = "give sas_url, or container_url with credential = \
                                         \"entra\", or endpoint, account, key and container";
