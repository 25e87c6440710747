//! The test kit: what hubwasm's tests and benchmarks share, as one dev-dependency.
//!
//! - [`harness`]: `hubwasm run` as processes: the embedded endpoint, configs, hosts with their
//!   logs, sending, bounded waits, views of the checkpoint store and `hubwasm status`.
//! - [`azurite`], [`redis`], [`registry`], [`python`]: the real services and clients the tests
//!   use (Azurite for Blob, Debian's redis-server and docker-registry, the official Python SDKs).
//! - [`lang_plugins`]: the Python and JavaScript plugins, built by `hubwasm plugin build`.
//! - [`raw`], [`fuzz`]: the endpoint spoken to frame by frame, and generators of hostile input.
//! - [`counting_alloc`]: a counting allocator for tests that bound memory.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

pub mod azurite;
pub mod counting_alloc;
pub mod fuzz;
pub mod harness;
pub mod lang_plugins;
pub mod python;
pub mod raw;
pub mod redis;
pub mod registry;

/// A port that was free a moment ago on 127.0.0.1 (for services that must be told one).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A tool `scripts/setup.sh` installs: `$<env>`, else `~/.cache/hubwasm/<under_cache>`;
/// missing, the test stops saying how to install `what`.
pub fn installed(env: &str, under_cache: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME"))
            .join(".cache/hubwasm")
            .join(under_cache)
    });
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh to install {what}",
        path.display()
    );
    path
}

/// Until something listens on 127.0.0.1:`port`; `what` did not start if nothing does within
/// `limit`.
pub fn wait_listening(port: u16, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kill a service's process (kill -9) and reap it, if it runs.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The `hubwasm` binary of this build: `$HUBWASM_BIN`, else beside the running test or
/// benchmark (`target/<profile>/deps/<test>` → `target/<profile>/hubwasm`), where cargo builds
/// it for the package's tests and benches.
pub fn hubwasm_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HUBWASM_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    profile.join(format!("hubwasm{}", std::env::consts::EXE_SUFFIX))
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
