//! The endpoint: a TCP listener serving AMQP connections over one shared [`Namespace`].

mod attach;
mod cbs;
mod connection;
mod deliver;
pub mod filter;
mod handshake;
mod ingest;
pub mod limits;
mod management;
pub mod namespace;
mod requests;
mod session;
pub mod stored;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, HubConfig};
use crate::storage::StorageError;
pub use namespace::Namespace;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; the message names the setting and what to use.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source} (is another endpoint or emulator running there?)")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the partition logs: {0}")]
    Storage(#[from] StorageError),
    /// Another endpoint (a `hubwasm hub serve` or a `hubwasm run` with the embedded endpoint)
    /// has the data directory open.
    #[error(
        "the data directory {} is in use by another hubwasm endpoint; stop it or use another \
         --data directory",
        .0.display()
    )]
    InUse(std::path::PathBuf),
    #[error("cannot lock the data directory {}: {source}", path.display())]
    Lock {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running endpoint.
pub struct RunningHub {
    addr: SocketAddr,
    namespace: Arc<Namespace>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    syncer: Option<JoinHandle<()>>,
    policy: (String, String),
}

/// Validate the config, open storage, bind, and serve in the background.
pub async fn start(config: HubConfig) -> Result<RunningHub, StartError> {
    // Before anything is created or locked: a config built in code (not loaded from TOML) has
    // not been validated yet.
    config.validate()?;
    if config.development_key_exposed() {
        tracing::warn!(
            listen = %config.listen,
            "The well-known development key is served on an address other machines can reach; \
             anyone who can connect can send and receive. Set your own [[policy]] key"
        );
    }
    let policy = config
        .policies
        .first()
        .map(|p| (p.name.clone(), p.key.clone()))
        .ok_or_else(|| {
            ConfigError::Invalid("at least one [[policy]] with a name and key is needed".into())
        })?;
    let lock = lock_data_dir(&config.data_dir)?;
    let namespace = Arc::new(Namespace::open(&config)?);
    let listener = bind(config.listen).map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let syncer = namespace
        .sync_interval()
        .map(|every| spawn_syncer(namespace.clone(), every, shutdown_rx.clone()));
    let ns = namespace.clone();
    let task = tokio::spawn(async move {
        // Held while serving: one writer per data directory.
        let _lock = lock;
        let mut stop = shutdown_rx.clone();
        let mut retention = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match connection::admit(&ns) {
                        Some(slot) => {
                            tracing::debug!(%peer, "Connection accepted");
                            tokio::spawn(connection::serve(stream, ns.clone(), shutdown_rx.clone(), slot));
                        }
                        None => {
                            tracing::debug!(%peer, "Connection refused: too many connections");
                            drop(stream);
                        }
                    },
                    Err(err) => {
                        tracing::warn!(error = %err, "Accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = retention.tick() => ns.apply_retention(),
                _ = stop.changed() => break,
            }
        }
    });
    Ok(RunningHub {
        addr,
        namespace,
        shutdown,
        task,
        syncer,
        policy,
    })
}

/// With `storage.fsync = "<ms>"`, sync partitions on a timer too: an append syncs only when the
/// interval has passed, so without this the tail of a burst would wait for the next append.
/// Ends on shutdown with a last sync of everything.
fn spawn_syncer(
    ns: Arc<Namespace>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    // At least once a minute (a log is only synced when its interval is due), never spinning.
    let period = every.clamp(Duration::from_millis(1), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let ns = ns.clone();
                    // fsync blocks: keep it off the async workers.
                    let _ = tokio::task::spawn_blocking(move || ns.sync_due()).await;
                }
                _ = stop.changed() => break,
            }
        }
        let _ = tokio::task::spawn_blocking(move || ns.sync_all()).await;
    })
}

/// Bind with TCP_MAXSEG 16384: the Python SDK copies the listening socket's MSS onto its own
/// socket, and the 32768 loopback may report is more than it can set.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    set_maxseg(&socket, 16384);
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(target_os = "linux")]
fn set_maxseg(socket: &tokio::net::TcpSocket, mss: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain setsockopt on a socket we own, with a correctly sized int argument.
    let rc = unsafe {
        libc_setsockopt(
            socket.as_raw_fd(),
            6, // IPPROTO_TCP
            2, // TCP_MAXSEG
            &mss as *const i32 as *const std::ffi::c_void,
            std::mem::size_of::<i32>() as u32,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "Cannot set TCP_MAXSEG");
    }
}

#[cfg(target_os = "linux")]
extern "C" {
    #[link_name = "setsockopt"]
    fn libc_setsockopt(
        fd: i32,
        level: i32,
        name: i32,
        value: *const std::ffi::c_void,
        len: u32,
    ) -> i32;
}

#[cfg(not(target_os = "linux"))]
fn set_maxseg(_socket: &tokio::net::TcpSocket, _mss: i32) {}

impl RunningHub {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (for tests and the in-process host).
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.namespace
    }

    /// A connection string for `hub` as the official SDKs take it (the Python SDK's emulator
    /// mode; the port is included when it is not 5672).
    pub fn connection_string(&self, hub: &str) -> String {
        let host = if self.addr.port() == 5672 {
            "localhost".to_string()
        } else {
            format!("localhost:{}", self.addr.port())
        };
        format!(
            "Endpoint=sb://{host};SharedAccessKeyName={};SharedAccessKey={};\
             UseDevelopmentEmulator=true;EntityPath={hub}",
            self.policy.0, self.policy.1
        )
    }

    /// Close every connection and stop listening.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(syncer) = self.syncer {
            let _ = syncer.await;
        }
    }
}

/// Take the data directory's lock file: two endpoints appending to the same partition logs
/// would corrupt them.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let lock_err = |source| StartError::Lock {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(lock_err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::InUse(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(lock_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;

    async fn start_error(config: HubConfig) -> String {
        match start(config).await {
            Ok(hub) => {
                hub.shutdown().await;
                panic!("an invalid config started");
            }
            Err(err) => err.to_string(),
        }
    }

    fn base(dir: &std::path::Path) -> HubConfig {
        HubConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.to_path_buf(),
            ..HubConfig::default()
        }
    }

    #[tokio::test]
    async fn an_empty_policy_list_is_a_start_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = start_error(HubConfig {
            policies: Vec::new(),
            ..base(dir.path())
        })
        .await;
        assert!(err.contains("[[policy]]"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_fsync_value_is_a_start_error_naming_the_setting_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = start_error(HubConfig {
            storage: StorageConfig {
                fsync: "sometimes".into(),
                ..StorageConfig::default()
            },
            ..base(dir.path())
        })
        .await;
        assert!(
            err.contains("storage.fsync") && err.contains("sometimes") && err.contains("always"),
            "{err}"
        );
    }

    /// With `fsync = "<ms>"`, the tail of a burst reaches the disk once the interval has passed
    /// even if nothing is appended after it.
    #[tokio::test]
    async fn with_an_fsync_interval_the_tail_of_a_burst_is_synced_without_a_later_append() {
        let dir = tempfile::tempdir().unwrap();
        let hub = start(HubConfig {
            storage: StorageConfig {
                fsync: "50".into(),
                ..StorageConfig::default()
            },
            ..base(dir.path())
        })
        .await
        .unwrap();
        let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
        // Append until an append leaves something unsynced (the first one after a quiet
        // interval syncs at once; one within the interval does not).
        let event = [crate::amqp::message::Message::with_data(b"e".to_vec())];
        let mut bursts = 0;
        while !partition.has_unsynced() {
            partition.append(&event).unwrap();
            bursts += 1;
            assert!(bursts < 100_000, "every append synced at once");
        }
        // Nothing more is appended; the sync must still happen. Generous bound: a slow or
        // busy machine, not a performance check.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while partition.has_unsynced() {
            assert!(
                std::time::Instant::now() < deadline,
                "the tail of the burst was never synced"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        hub.shutdown().await;
    }

    #[tokio::test]
    async fn an_invalid_config_creates_and_locks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let err = start_error(HubConfig {
            event_hubs: Vec::new(),
            ..base(&data_dir)
        })
        .await;
        assert!(err.contains("[[event_hub]]"), "{err}");
        assert!(!data_dir.exists());
    }
}
