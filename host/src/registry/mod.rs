//! Plugins in OCI registries: `oci://host[:port]/repository[:tag|@sha256:…]`, in the layout
//! `wkg` and `oras` use for WebAssembly components (one `application/wasm` layer, config
//! `application/vnd.wasm.config.v0+json`). A reference is resolved once, when it is accepted,
//! to the manifest digest it names then: the running version is that digest, so a tag moved
//! later never changes running code by itself. Pulls are bounded (manifest checked first, the
//! layer counted as it streams) and verified against the layer digest; pulled components are
//! cached on disk by digest. Registries on loopback addresses are spoken to over plain HTTP;
//! every other registry over HTTPS.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

pub mod reference;

pub use reference::{as_reference, OciRef, RegistryError, SCHEME};

/// A component's config, as wkg writes it.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// A component's one layer.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A component pulled from a registry.
#[derive(Debug)]
pub struct Pulled {
    pub bytes: Vec<u8>,
    /// The reference pinned to the manifest digest it resolved to.
    pub pinned: String,
    /// The plugin's default name (the repository's last segment).
    pub name: String,
}

impl Pulled {
    /// The component, named `name` (default: the repository's last segment), from its pinned
    /// reference.
    pub fn into_component(self, name: Option<&str>) -> crate::artifact::Component {
        let name = name.unwrap_or(&self.name).to_string();
        crate::artifact::Component::new(&name, self.pinned, self.bytes)
    }
}

/// The registries a host may pull from or push to, with their credentials.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// Credentials by registry (`host[:port]`): user name and password or token.
    credentials: HashMap<String, (String, String)>,
    /// Where pulled components are kept by digest; `None`: not kept.
    cache: Option<PathBuf>,
}

impl Registries {
    /// Registries with `credentials` (`host[:port]` → user, password) and a cache directory.
    pub fn new(credentials: HashMap<String, (String, String)>, cache: Option<PathBuf>) -> Self {
        Self { credentials, cache }
    }

    fn client(reference: &OciRef) -> Client {
        let protocol = if reference.is_loopback() {
            ClientProtocol::HttpsExcept(vec![reference.registry().to_string()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            use_monolithic_push: true,
            ..Default::default()
        })
    }

    fn auth(&self, reference: &OciRef) -> RegistryAuth {
        match self.credentials.get(reference.registry()) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Resolve `reference` to its manifest digest and pull its component, at most `limit`
    /// bytes, checked against the layer digest.
    pub async fn pull(&self, reference: &OciRef, limit: u64) -> Result<Pulled, RegistryError> {
        let client = Self::client(reference);
        let auth = self.auth(reference);
        let unreachable = |e: &dyn std::fmt::Display| RegistryError::Unreachable {
            reference: reference.to_string(),
            detail: e.to_string(),
        };
        let (manifest, manifest_digest) = client
            .pull_image_manifest(&reference.reference, &auth)
            .await
            .map_err(|e| unreachable(&crate::errors::one_line(&e)))?;
        let not_component = |why: String| RegistryError::NotAComponent {
            reference: reference.to_string(),
            why,
        };
        let [layer] = manifest.layers.as_slice() else {
            return Err(not_component(format!(
                "it has {} layers, not one",
                manifest.layers.len()
            )));
        };
        if layer.media_type != LAYER_MEDIA_TYPE {
            return Err(not_component(format!(
                "its layer is {:?}, not {LAYER_MEDIA_TYPE}",
                layer.media_type.chars().take(100).collect::<String>()
            )));
        }
        let sha256 = layer
            .digest
            .strip_prefix("sha256:")
            .filter(|d| crate::checkpoint::is_sha256_hex(d))
            .ok_or_else(|| not_component("its layer's digest is not sha256".into()))?
            .to_string();
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > limit {
            return Err(RegistryError::TooLarge {
                reference: reference.to_string(),
                size,
                limit,
            });
        }
        let pinned = reference.pinned(&manifest_digest);
        let name = reference.name().to_string();
        if let Some(bytes) = self.cached(&sha256, limit) {
            return Ok(Pulled {
                bytes,
                pinned,
                name,
            });
        }
        let mut stream = client
            .pull_blob_stream(&reference.reference, layer)
            .await
            .map_err(|e| unreachable(&crate::errors::one_line(&e)))?;
        if stream.content_length.is_some_and(|n| n > limit) {
            return Err(RegistryError::TooLarge {
                reference: reference.to_string(),
                size: stream.content_length.unwrap_or_default(),
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) =
            stream
                .stream
                .try_next()
                .await
                .map_err(|e| RegistryError::Digest {
                    reference: reference.to_string(),
                    detail: e.to_string(),
                })?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(RegistryError::TooLarge {
                    reference: reference.to_string(),
                    size: (bytes.len() + chunk.len()) as u64,
                    limit,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let got = crate::plugin::sha256_hex(&bytes);
        if got != sha256 {
            return Err(RegistryError::Digest {
                reference: reference.to_string(),
                detail: format!("sha256:{got}"),
            });
        }
        self.keep(&sha256, &bytes);
        Ok(Pulled {
            bytes,
            pinned,
            name,
        })
    }

    /// Publish `bytes` (a component) at `reference` as an OCI artifact in wkg's layout; the
    /// reference pinned to the pushed manifest's digest.
    pub async fn push(&self, reference: &OciRef, bytes: &[u8]) -> Result<String, RegistryError> {
        let client = Self::client(reference);
        let auth = self.auth(reference);
        let failed = |detail: String| RegistryError::Push {
            reference: reference.to_string(),
            detail,
        };
        let layer = ImageLayer::new(bytes.to_vec(), LAYER_MEDIA_TYPE.to_string(), None);
        let created = time_rfc3339();
        let config = serde_json::json!({
            "created": created,
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer.sha256_digest()],
            "component": { "exports": [], "imports": [], "target": null },
        });
        let config = Config::new(
            serde_json::to_vec(&config).map_err(|e| failed(e.to_string()))?,
            CONFIG_MEDIA_TYPE.to_string(),
            None,
        );
        let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        manifest.media_type = Some(MANIFEST_MEDIA_TYPE.to_string());
        let pushed = client
            .push(
                &reference.reference,
                &[layer],
                config,
                &auth,
                Some(manifest),
            )
            .await
            .map_err(|e| failed(crate::errors::one_line(&e)))?;
        let digest = pushed
            .manifest_url
            .rsplit_once("/manifests/")
            .map(|(_, d)| d.to_string())
            .filter(|d| d.starts_with("sha256:"))
            .ok_or_else(|| failed(format!("unexpected answer {}", pushed.manifest_url)))?;
        Ok(reference.pinned(&digest))
    }

    fn cached(&self, sha256: &str, limit: u64) -> Option<Vec<u8>> {
        let path = self.cache.as_ref()?.join(format!("{sha256}.wasm"));
        let bytes = crate::files::read(&path, crate::files::Bound::component(limit)).ok()?;
        (crate::plugin::sha256_hex(&bytes) == sha256).then_some(bytes)
    }

    fn keep(&self, sha256: &str, bytes: &[u8]) {
        let Some(dir) = &self.cache else {
            return;
        };
        let kept = std::fs::create_dir_all(dir).and_then(|()| {
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, bytes)?;
            tmp.persist(dir.join(format!("{sha256}.wasm")))
                .map(|_| ())
                .map_err(|e| e.error)
        });
        if let Err(err) = kept {
            tracing::debug!(error = %err, "Cannot keep a pulled component in the cache");
        }
    }
}

/// Now as RFC 3339 (the config's `created`).
fn time_rfc3339() -> String {
    let now = azure_core::time::OffsetDateTime::now_utc();
    azure_core::time::to_rfc3339(&now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_need_a_registry_host_and_parse_tags_and_digests() {
        let r = OciRef::parse("oci://127.0.0.1:5000/acme/filters/json:v2").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "acme/filters/json");
        assert_eq!(r.name(), "json");
        assert!(r.is_loopback());
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = r.pinned(&digest);
        assert_eq!(
            pinned,
            format!("oci://127.0.0.1:5000/acme/filters/json@{digest}")
        );
        assert!(OciRef::parse(&pinned).is_ok());
        assert!(!OciRef::parse("oci://example.azurecr.io/p:1")
            .unwrap()
            .is_loopback());
        for bad in [
            "json:v2",
            "oci://json:v2",
            "oci://library/json",
            "http://127.0.0.1:5000/json:v2",
            "oci://127.0.0.1:5000/JSON:v2",
            "oci://127.0.0.1:5000/json:v2 x",
        ] {
            assert!(OciRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_match_a_registry_or_whole_repository_segments() {
        let r = OciRef::parse("oci://reg.example:5000/acme/filters/json:v2").unwrap();
        let granted =
            |g: &[&str]| r.is_granted(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(granted(&["reg.example:5000"]));
        assert!(granted(&["reg.example:5000/acme"]));
        assert!(granted(&["oci://reg.example:5000/acme/filters/"]));
        assert!(granted(&["reg.example:5000/acme/filters/json"]));
        assert!(!granted(&["reg.example:5000/ac"]));
        assert!(!granted(&["reg.example:5000/globex"]));
        assert!(!granted(&["reg.example"]));
        assert!(!granted(&["other.example:5000/acme"]));
        assert!(!granted(&[]));
    }
}
