//! Redis for tests: each [`RedisServer`] is Debian's `redis-server` on a free 127.0.0.1 port,
//! in memory, stopped when the value is dropped (also when the test panics). `scripts/setup.sh`
//! installs it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long redis-server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start redis-server on a free port and wait until it accepts connections.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: crate::free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port; data is not kept (an outage that loses the keys is the
    /// worst case the host must survive without losing events).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): run scripts/setup.sh to install it")
            });
        self.child = Some(child);
        crate::wait_listening(self.port, "redis-server", START_TIMEOUT);
    }

    /// Stop it (kill -9): connections drop, calls fail until [`RedisServer::restart`].
    pub fn stop(&mut self) {
        crate::kill(&mut self.child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
