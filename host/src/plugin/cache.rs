//! On-disk cache of compiled components.
//!
//! Compiling a Python or JavaScript component takes seconds; loading its compiled form takes
//! milliseconds. Entries are keyed by the SHA-256 of the component bytes and the engine's
//! compatibility hash (wasmtime version, target, compiler settings), so a changed plugin or
//! engine never loads a stale artifact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// A directory of compiled components (`<key>.cwasm`).
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into SHA-256, to fold the engine's compatibility hash into the key.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only used through write")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ComponentCache {
    /// A cache rooted at `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$HUBWASM_CACHE_DIR`, else `$XDG_CACHE_HOME/hubwasm/components`, else
    /// `~/.cache/hubwasm/components`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("HUBWASM_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("hubwasm").join("components"))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut hasher = ShaHasher(Sha256::new());
        hasher.write(bytes);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = hasher.0.finalize();
        let key: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{key}.cwasm"))
    }

    /// Load the compiled form of `bytes` if cached. A corrupt or incompatible entry is removed
    /// and reported as a miss.
    pub(crate) fn load(&self, engine: &Engine, bytes: &[u8]) -> Option<Component> {
        let path = self.entry(engine, bytes);
        if !path.exists() {
            return None;
        }
        // SAFETY: the cache directory belongs to the host and entries are only written by
        // `store` below from wasmtime's own serialisation; wasmtime still checks the header and
        // engine compatibility and refuses a mismatching artifact.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "Dropping unusable cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Store the compiled form of `bytes`. Failures only cost speed, so they are logged.
    pub(crate) fn store(&self, engine: &Engine, bytes: &[u8], component: &Component) {
        let path = self.entry(engine, bytes);
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let serialized = component.serialize().map_err(std::io::Error::other)?;
            // Write then rename, so a concurrent reader never sees half a file.
            let tmp = tempfile_path(&path);
            std::fs::write(&tmp, serialized)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(err) = result {
            tracing::warn!(dir = %self.dir.display(), error = %err, "Cannot write compiled-component cache");
        }
    }
}

fn tempfile_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
