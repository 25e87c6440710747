//! Azurite's blob service for tests: each [`Azurite`] is its own emulator process on a free
//! 127.0.0.1 port, in memory, killed when the value is dropped (also when the test panics).
//!
//! Include it with
//! ```ignore
//! #[path = "support/azurite.rs"]
//! mod azurite;
//! ```
//! `scripts/setup.sh` installs Azurite; `scripts/env.sh` exports `HUBWASM_AZURITE` (the
//! `azurite-blob` binary), else `~/.cache/hubwasm/node/node_modules/.bin/azurite-blob` is used.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
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
}

/// The `azurite-blob` binary.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("HUBWASM_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/hubwasm/node/node_modules/.bin/azurite-blob")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh to install Azurite",
        path.display()
    );
    path
}

impl Azurite {
    /// Start Azurite and wait until it accepts connections.
    pub fn start() -> Azurite {
        // A port picked by the OS can be taken again before Azurite binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(azurite) => return azurite,
                Err(e) => last_error = e,
            }
        }
        panic!("Azurite did not start: {last_error}");
    }

    fn try_start() -> Result<Azurite, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("azurite.log")).expect("log file");
        let child = Command::new(binary())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            // Azurite 3.37 refuses --location together with --inMemoryPersistence; run it in
            // the temp dir instead, so anything it writes is removed with it.
            .current_dir(dir.path())
            .args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary().display()))?;
        let mut azurite = Azurite {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(azurite.addr()).is_ok() {
                return Ok(azurite);
            }
            let exited = azurite
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(format!("it exited ({status}):\n{}", azurite.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "port {port} not open after {START_TIMEOUT:?}:\n{}",
                    azurite.log()
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

    /// Stop the emulator now (an outage); its in-memory data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
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

/// A port nothing listens on right now (the OS picks it; 127.0.0.1 only).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
