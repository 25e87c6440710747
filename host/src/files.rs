//! Reading a file that a config, the command line or an admin caller names (a plugin, an events
//! file): every such name is a way into the host, so it is opened as a regular file only (no
//! device, FIFO or socket; nothing on `/proc`, `/sys` or another kernel file system), read up
//! to a bound and never past it, and, where directories are configured, confined to them (the
//! file actually opened must lie inside one, so a symlink cannot lead out). Errors name the
//! file, the rule and what to do, and never quote what the file holds.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most a plugin component may weigh unless configured otherwise (64 MiB).
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// The most an events file (replay or sample events) may weigh unless configured otherwise
/// (16 MiB).
pub const DEFAULT_MAX_EVENTS_BYTES: u64 = 16 << 20;

/// What is being read, and the most of it that is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// `plugin component`, `events file`, ...: named in errors.
    pub what: &'static str,
    /// Bytes; a file larger than this is refused, and no more than this + 1 is read.
    pub limit: u64,
    /// The setting that raises the limit, named in the error.
    pub setting: &'static str,
}

impl Bound {
    /// A plugin component of at most `limit` bytes.
    pub fn component(limit: u64) -> Self {
        Self {
            what: "plugin component",
            limit,
            setting: "[admin] max_component_bytes",
        }
    }

    /// The error for `path` being over this bound.
    pub fn too_large(&self, path: &Path) -> FileError {
        FileError::TooLarge {
            what: self.what,
            path: path.to_path_buf(),
            limit: self.limit,
            setting: self.setting,
        }
    }

    /// An events file of at most `limit` bytes.
    pub fn events(limit: u64) -> Self {
        Self {
            what: "events file",
            limit,
            setting: "[admin] max_replay_bytes",
        }
    }
}

/// Why a named file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {what} {path}: {source}")]
    Open {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {kind}, not a regular file: a {what} must be a regular file")]
    NotRegular {
        what: &'static str,
        path: PathBuf,
        kind: &'static str,
    },
    #[error(
        "{path} is on {fs}, a kernel file system, not an ordinary file: a {what} must be a \
         regular file on disk"
    )]
    KernelFileSystem {
        what: &'static str,
        path: PathBuf,
        fs: &'static str,
    },
    #[error(
        "{path} is larger than {limit} bytes, the most a {what} may have here; make it smaller \
         or raise {setting}"
    )]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        limit: u64,
        setting: &'static str,
    },
    #[error(
        "{path} is not inside the directories host paths may name ({dirs}); upload the file's \
         bytes instead, or have the operator put it there"
    )]
    Outside { path: PathBuf, dirs: String },
    #[error(
        "host paths are not accepted here: no [admin] plugin_dirs are configured; upload the \
         file's bytes instead (`hubwasm plugin swap FILE` does)"
    )]
    NoDirs,
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Read the regular file at `path`, at most `bound.limit` bytes of it.
pub fn read(path: &Path, bound: Bound) -> Result<Vec<u8>, FileError> {
    read_within(path, bound, None)
}

/// [`read`], and the file actually opened (symlinks resolved) must lie inside one of `dirs`.
/// No directories: nothing is read ([`FileError::NoDirs`]).
pub fn read_confined(path: &Path, bound: Bound, dirs: &[PathBuf]) -> Result<Vec<u8>, FileError> {
    if dirs.is_empty() {
        return Err(FileError::NoDirs);
    }
    // Checked by name first, so nothing outside is even opened (a device, a FIFO); then again
    // on the file actually opened.
    let named_inside = path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        && dirs.iter().any(|dir| {
            path.starts_with(dir)
                || std::fs::canonicalize(dir).is_ok_and(|dir| path.starts_with(dir))
        });
    if !named_inside {
        return Err(outside(path, dirs));
    }
    read_within(path, bound, Some(dirs))
}

fn outside(path: &Path, dirs: &[PathBuf]) -> FileError {
    FileError::Outside {
        path: path.to_path_buf(),
        dirs: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn read_within(path: &Path, bound: Bound, dirs: Option<&[PathBuf]>) -> Result<Vec<u8>, FileError> {
    let what = bound.what;
    let (mut file, len) = open_checked(path, what, dirs)?;
    let too_large = || bound.too_large(path);
    if len > bound.limit {
        return Err(too_large());
    }
    // The size can change while reading: read one byte past the bound at most, never more.
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut file)
        .take(bound.limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > bound.limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Open `path` for reading as a regular file (see the module docs) without reading it: for
/// what is streamed rather than read whole (`--send` files), with the reader's own bounds.
pub fn open_regular(path: &Path, what: &'static str) -> Result<std::fs::File, FileError> {
    open_checked(path, what, None).map(|(file, _)| file)
}

/// The opened file and its size.
fn open_checked(
    path: &Path,
    what: &'static str,
    dirs: Option<&[PathBuf]>,
) -> Result<(std::fs::File, u64), FileError> {
    // O_NONBLOCK: opening a FIFO with no writer must not hang (it is refused just after);
    // O_NOCTTY: a terminal never becomes ours.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| FileError::Open {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if let Some(dirs) = dirs {
        check_inside(&file, path, dirs)?;
    }
    let meta = file.metadata().map_err(|source| FileError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let kind = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(FileError::NotRegular {
            what,
            path: path.to_path_buf(),
            kind,
        });
    }
    if let Some(fs) = kernel_file_system(&file) {
        return Err(FileError::KernelFileSystem {
            what,
            path: path.to_path_buf(),
            fs,
        });
    }
    Ok((file, meta.len()))
}

/// The file opened must be inside one of `dirs`: its real path is read back from the open
/// descriptor, so neither a symlink nor a rename between check and open leads elsewhere.
fn check_inside(file: &std::fs::File, path: &Path, dirs: &[PathBuf]) -> Result<(), FileError> {
    use std::os::fd::AsRawFd;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path))
        .map_err(|source| FileError::Open {
            what: "file",
            path: path.to_path_buf(),
            source,
        })?;
    let inside = dirs.iter().any(|dir| {
        std::fs::canonicalize(dir)
            .map(|dir| real.starts_with(dir))
            .unwrap_or(false)
    });
    if inside {
        Ok(())
    } else {
        Err(outside(path, dirs))
    }
}

/// The kernel file system `file` lives on, if it is one (`/proc`, `/sys`, ...): their files
/// claim to be regular and empty, and hold the host's secrets.
fn kernel_file_system(file: &std::fs::File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid open descriptor and a statfs the call fills.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
        return Some("a file system that cannot be identified");
    }
    #[allow(clippy::unnecessary_cast)]
    let magic = stat.f_type as i64;
    Some(match magic {
        0x9fa0 => "procfs",
        0x6265_6572 => "sysfs",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x0027_e0eb | 0x6367_7270 => "cgroupfs",
        0x1cd1 => "devpts",
        0xcafe_4a11 => "bpffs",
        0xde5e_81e4 => "efivarfs",
        0x6265_6570 => "configfs",
        0x6165_676c => "pstore",
        0xf97c_ff8c => "selinuxfs",
        0x4244_4d41 => "binfmt_misc",
        _ => return None,
    })
}

/// A name for something uploaded or named, safe for logs and file names: letters, digits,
/// `.`, `-` and `_`, at most 64 of them; anything else becomes `_`.
pub fn safe_name(name: &str) -> String {
    let name: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_matches('.').to_string();
    if name.is_empty() {
        "plugin".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(limit: u64) -> Bound {
        Bound::component(limit)
    }

    #[test]
    fn a_regular_file_within_the_bound_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read(&file, bound(10)).unwrap(), b"0123456789");
        let err = read(&file, bound(9)).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { limit: 9, .. }), "{err}");
        assert!(err.to_string().contains("max_component_bytes"), "{err}");
    }

    #[test]
    fn devices_fifos_directories_and_kernel_files_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(Path::new("/dev/zero"), bound(1 << 20)).unwrap_err();
        assert!(
            matches!(
                err,
                FileError::NotRegular {
                    kind: "a device",
                    ..
                }
            ),
            "{err}"
        );
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer: a blocking open would hang here.
        let err = read(&fifo, bound(1 << 20)).unwrap_err();
        assert!(
            matches!(err, FileError::NotRegular { kind: "a FIFO", .. }),
            "{err}"
        );
        let err = read(dir.path(), bound(1 << 20)).unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
        let err = read(Path::new("/proc/self/environ"), bound(1 << 20)).unwrap_err();
        assert!(
            matches!(err, FileError::KernelFileSystem { fs: "procfs", .. }),
            "{err}"
        );
        let err = read(
            Path::new("/sys/kernel/mm/transparent_hugepage/enabled"),
            bound(1 << 20),
        );
        if let Err(err) = err {
            assert!(!matches!(err, FileError::TooLarge { .. }), "{err}");
        } else {
            panic!("a sysfs file was read");
        }
    }

    #[test]
    fn confinement_follows_symlinks_to_the_file_actually_opened() {
        let allowed = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let inside = allowed.path().join("ok.wasm");
        std::fs::write(&inside, b"ok").unwrap();
        let secret = elsewhere.path().join("secret");
        std::fs::write(&secret, b"root:*:secret").unwrap();
        std::os::unix::fs::symlink(&secret, allowed.path().join("link.wasm")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", allowed.path().join("passwd.wasm")).unwrap();
        let dirs = vec![allowed.path().to_path_buf()];
        assert_eq!(read_confined(&inside, bound(100), &dirs).unwrap(), b"ok");
        for escape in [
            allowed.path().join("link.wasm"),
            allowed.path().join("passwd.wasm"),
            allowed.path().join("../").join(
                secret
                    .strip_prefix(elsewhere.path().parent().unwrap())
                    .unwrap(),
            ),
            secret.clone(),
        ] {
            let err = read_confined(&escape, bound(100), &dirs).unwrap_err();
            assert!(
                matches!(err, FileError::Outside { .. }),
                "{escape:?}: {err}"
            );
            assert!(!err.to_string().contains("root:"), "{err}");
        }
        let err = read_confined(&inside, bound(100), &[]).unwrap_err();
        assert!(matches!(err, FileError::NoDirs), "{err}");
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("json_filter-v2.wasm"), "json_filter-v2.wasm");
        assert_eq!(safe_name(""), "plugin");
        assert_eq!(safe_name(&"x".repeat(100)).len(), 64);
    }
}
