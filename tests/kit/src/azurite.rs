//! Azurite's blob service for tests: each [`Azurite`] is its own emulator process on a free
//! 127.0.0.1 port, in memory (or on disk, to survive a restart), stopped when the value is
//! dropped (also when the test panics).
//! `scripts/setup.sh` installs Azurite; `scripts/env.sh` exports `HUBWASM_AZURITE` (the
//! `azurite-blob` binary), else `~/.cache/hubwasm/node/node_modules/.bin/azurite-blob` is used.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's fixed development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's fixed development key (public, documented by Microsoft).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long Azurite may take to listen (node start-up on a loaded 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Azurite blob service.
pub struct Azurite {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Data on disk in `dir` (survives [`Azurite::restart`]) instead of in memory.
    persistent: bool,
}

/// The `azurite-blob` binary.
pub fn binary() -> PathBuf {
    crate::installed(
        "HUBWASM_AZURITE",
        "node/node_modules/.bin/azurite-blob",
        "Azurite",
    )
}

impl Azurite {
    /// Start Azurite (data in memory) and wait until it accepts connections.
    pub fn start() -> Azurite {
        Self::start_with(false)
    }

    /// Start Azurite with its data on disk, so that [`Azurite::stop`] then
    /// [`Azurite::restart`] is an outage that loses nothing that was stored.
    pub fn start_persistent() -> Azurite {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> Azurite {
        // A port picked by the OS can be taken again before Azurite binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            let mut azurite = Azurite {
                child: None,
                port: crate::free_port(),
                dir: tempfile::tempdir().expect("temp dir"),
                persistent,
            };
            match azurite.spawn() {
                Ok(()) => return azurite,
                Err(e) => last_error = e,
            }
        }
        panic!("Azurite did not start: {last_error}");
    }

    /// Start it again on the same port (and, if persistent, the same data) after [`stop`].
    ///
    /// [`stop`]: Azurite::stop
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port may linger for a moment after the old process.
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("Azurite did not restart: {e}"),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("azurite.log"))
            .expect("log file");
        let mut command = Command::new(binary());
        command
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--silent"]);
        if self.persistent {
            command.arg("--location").arg(self.dir.path().join("data"));
        } else {
            // Azurite 3.37 refuses --location together with --inMemoryPersistence; run it in
            // the temp dir instead, so anything it writes is removed with it.
            command
                .current_dir(self.dir.path())
                .arg("--inMemoryPersistence");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary().display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(self.addr()).is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("it exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "port {} not open after {START_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// The blob service endpoint of the development account (path-style, as Azurite wants).
    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// A storage connection string for the official SDKs.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.blob_endpoint()
        )
    }

    /// Azurite's own output (its log file), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }

    /// Stop the emulator now (an outage): SIGTERM, so a persistent one saves its data first
    /// (SIGKILL after 10 s); in-memory data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}
