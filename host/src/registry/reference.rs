//! A registry reference as a config or a swap names it (`oci://host/repo:tag` or
//! `@sha256:…`): parsed, checked against a tenant's grants, shown. A value type the config
//! parses at load, apart from pulling and pushing.

use oci_client::Reference;

/// The scheme of a registry reference.
pub const SCHEME: &str = "oci://";
/// The registry reference a plugin setting holds (`oci://...`), if it holds one rather than a
/// file path.
pub fn as_reference(plugin: &std::path::Path) -> Option<&str> {
    plugin.to_str().filter(|s| s.starts_with(SCHEME))
}

/// Why a registry reference could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "`{reference}` is not a registry reference: {why}; write oci://HOST[:PORT]/REPOSITORY:TAG \
         or oci://HOST[:PORT]/REPOSITORY@sha256:DIGEST"
    )]
    BadReference { reference: String, why: String },
    #[error("cannot pull {reference}: {detail}; check the registry address, that it is up, and the credentials")]
    Unreachable { reference: String, detail: String },
    #[error("{reference} is not a WebAssembly component artifact: {why}")]
    NotAComponent { reference: String, why: String },
    #[error(
        "{reference} has a component of {size} bytes, more than the {limit} this host accepts \
         ([admin] max_component_bytes)"
    )]
    TooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },
    #[error("{reference}: the layer's bytes do not have the digest its manifest names ({detail}); refused")]
    Digest { reference: String, detail: String },
    #[error("cannot push to {reference}: {detail}")]
    Push { reference: String, detail: String },
    #[error(
        "tenant {tenant} may not pull {reference}: it is not in the registries granted to it \
         ([tenant.grants] registries); ask the operator to grant the repository"
    )]
    NotGranted { reference: String, tenant: String },
}

/// A parsed `oci://` reference.
#[derive(Debug, Clone)]
pub struct OciRef {
    text: String,
    pub(super) reference: Reference,
}

impl OciRef {
    /// Parse `oci://host[:port]/repository[:tag|@digest]`. The host must be explicit (no
    /// implicit Docker Hub).
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let bad = |why: &str| RegistryError::BadReference {
            reference: text.chars().take(200).collect(),
            why: why.into(),
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with oci://"))?;
        if rest.len() > 512 || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it is too long or has spaces"));
        }
        let host = rest.split('/').next().unwrap_or_default();
        let explicit = host.contains('.') || host.contains(':') || host == "localhost";
        if !explicit || !rest.contains('/') {
            return Err(bad("it names no registry host"));
        }
        let reference: Reference = rest.parse().map_err(|e| bad(&format!("{e}")))?;
        if reference.registry() != host {
            return Err(bad("it names no registry host"));
        }
        Ok(Self {
            text: text.to_string(),
            reference,
        })
    }

    /// The registry (`host[:port]`).
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The repository path.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The reference pinned to a manifest digest.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{SCHEME}{}/{}@{digest}", self.registry(), self.repository())
    }

    /// The last segment of the repository: a plugin's default name.
    pub fn name(&self) -> &str {
        self.repository().rsplit('/').next().unwrap_or("plugin")
    }

    /// Whether a tenant granted `grants` (`host[:port]` for a whole registry, or
    /// `host[:port]/repository-prefix`) may use this reference; a prefix matches whole path
    /// segments only.
    pub fn is_granted(&self, grants: &[String]) -> bool {
        let whole = format!("{}/{}", self.registry(), self.repository());
        grants.iter().any(|grant| {
            let grant = grant.trim_start_matches(SCHEME).trim_end_matches('/');
            grant == self.registry()
                || whole == grant
                || whole
                    .strip_prefix(grant)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    pub(super) fn is_loopback(&self) -> bool {
        let host = self.registry();
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for OciRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}
