//! On-disk cache of compiled components.
//!
//! Compiling a Python or JavaScript component takes seconds; loading its compiled form takes
//! milliseconds. Entries are keyed by the SHA-256 of the component bytes and the engine's
//! compatibility hash (wasmtime version, target, compiler settings), so a changed plugin or
//! engine never loads a stale artifact.
//!
//! A compiled artifact is native code that wasmtime runs without re-verifying it, so the cache
//! only loads entries it wrote itself: each entry carries an HMAC-SHA256 tag made with a key that
//! only this user can read (`.key`, created with mode 0600), and an entry (or the directory, or
//! the key) that another user owns or that group or others may write is refused. A refused entry
//! is logged and the plugin is compiled again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
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

    /// Load the compiled form of `bytes` if cached. A corrupt, incompatible or untrusted entry
    /// is removed and reported as a miss.
    pub(crate) fn load(&self, engine: &Engine, bytes: &[u8]) -> Option<Component> {
        let path = self.entry(engine, bytes);
        if !path.exists() {
            return None;
        }
        let artifact = match self.trusted(&path) {
            Ok(artifact) => artifact,
            Err(why) => {
                tracing::warn!(path = %path.display(), reason = %why, "Refusing a compiled-component cache entry; compiling the plugin again");
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(tag_path(&path));
                return None;
            }
        };
        // SAFETY: the bytes are an artifact this cache wrote from wasmtime's own serialisation
        // (checked above: private key, HMAC tag, ownership and permissions); wasmtime still
        // checks the header and engine compatibility and refuses a mismatching artifact.
        match unsafe { Component::deserialize(engine, &artifact) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "Dropping unusable cache entry");
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(tag_path(&path));
                None
            }
        }
    }

    /// The entry's bytes, if this cache wrote them: why not, otherwise.
    fn trusted(&self, path: &Path) -> Result<Vec<u8>, String> {
        private(&self.dir, "the cache directory")?;
        let key_path = self.dir.join(KEY_FILE);
        private(&key_path, "the cache key")?;
        let key =
            std::fs::read(&key_path).map_err(|e| format!("cannot read the cache key: {e}"))?;
        private(path, "the entry")?;
        let tag_file = tag_path(path);
        private(&tag_file, "the entry's tag")?;
        let tag = std::fs::read(&tag_file).map_err(|e| format!("no integrity tag: {e}"))?;
        let artifact = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let mut mac = HmacSha256::new_from_slice(&key).map_err(|e| e.to_string())?;
        mac.update(&artifact);
        mac.verify_slice(&tag)
            .map_err(|_| "its integrity tag does not match (changed after it was written)")?;
        Ok(artifact)
    }

    /// This user's cache key, created on first use.
    fn key(&self) -> std::io::Result<Vec<u8>> {
        let path = self.dir.join(KEY_FILE);
        if let Ok(key) = std::fs::read(&path) {
            if key.len() == KEY_LEN && private(&path, "the cache key").is_ok() {
                return Ok(key);
            }
            // An unusable key: replace it (entries tagged with it will fail their check).
            std::fs::remove_file(&path)?;
        }
        let mut key = vec![0u8; KEY_LEN];
        getrandom(&mut key)?;
        let tmp = tempfile_path(&path);
        write_private(&tmp, &key)?;
        // Another process may have made one meanwhile; `hard_link` keeps the first.
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                std::fs::read(&path)
            }
            Err(e) => Err(e),
        }
    }

    /// Store the compiled form of `bytes`. Failures only cost speed, so they are logged.
    pub(crate) fn store(&self, engine: &Engine, bytes: &[u8], component: &Component) {
        let path = self.entry(engine, bytes);
        let result = (|| -> std::io::Result<()> {
            create_private_dir(&self.dir)?;
            let key = self.key()?;
            let serialized = component.serialize().map_err(std::io::Error::other)?;
            let mut mac = HmacSha256::new_from_slice(&key).map_err(std::io::Error::other)?;
            mac.update(&serialized);
            let tag = mac.finalize().into_bytes();
            // Write then rename, so a concurrent reader never sees half a file; the tag first,
            // so an entry never exists without one.
            let tag_file = tag_path(&path);
            let tmp = tempfile_path(&tag_file);
            write_private(&tmp, &tag)?;
            std::fs::rename(&tmp, &tag_file)?;
            let tmp = tempfile_path(&path);
            write_private(&tmp, &serialized)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(err) = result {
            tracing::warn!(dir = %self.dir.display(), error = %err, "Cannot write compiled-component cache");
        }
    }
}

type HmacSha256 = Hmac<Sha256>;
const KEY_FILE: &str = ".key";
const KEY_LEN: usize = 32;

fn tag_path(entry: &Path) -> PathBuf {
    let mut name = entry.file_name().unwrap_or_default().to_os_string();
    name.push(".tag");
    entry.with_file_name(name)
}

/// Refuse a path that is not this user's or that group or others may write.
fn private(path: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{what}: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!("{what} is a symbolic link"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{what} belongs to user {} (this process runs as {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} may be written by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Fill `buf` from the kernel's random source.
fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn tempfile_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
