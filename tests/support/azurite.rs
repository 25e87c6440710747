//! Azurite's blob service for tests and benchmarks: started on a free loopback port with its
//! data in a temporary directory, killed when dropped (also when the test panics).
//!
//! The binary comes from `scripts/setup.sh` (`$HUBWASM_AZURITE`, default
//! `~/.cache/hubwasm/node/node_modules/.bin/azurite-blob`).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The well-known development account of the storage emulators.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn binary() -> String {
    std::env::var("HUBWASM_AZURITE").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/hubwasm/node/node_modules/.bin/azurite-blob")
    })
}

impl Azurite {
    /// Start Azurite and wait until it accepts connections.
    pub fn start() -> Result<Self, String> {
        let bin = binary();
        if !std::path::Path::new(&bin).exists() {
            return Err(format!("{bin} not found: run scripts/setup.sh"));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            // The Python storage SDK sends an API version newer than Azurite 3.37 knows.
            .args([
                "--skipApiVersionCheck",
                "--silent",
                "--disableTelemetry",
                "--loose",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut azurite = Azurite {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(azurite);
            }
            if let Ok(Some(status)) = azurite.child.try_wait() {
                return Err(format!("Azurite exited at start: {status}"));
            }
            if Instant::now() > deadline {
                return Err("Azurite did not start listening within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`
    pub fn blob_endpoint(&self) -> String {
        format!("http://{}/{ACCOUNT}", self.addr)
    }

    /// A connection string for the official SDKs (Python).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.blob_endpoint()
        )
    }

    /// Stop it (an outage); `Drop` does the same.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}
