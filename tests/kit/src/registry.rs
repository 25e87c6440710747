//! An OCI registry for tests: Debian's `docker-registry` (the CNCF distribution server) on a
//! free 127.0.0.1 port, storing in a temporary directory, with basic auth (bcrypt htpasswd made
//! by `htpasswd` from apache2-utils), stopped when the value is dropped. `scripts/setup.sh`
//! installs both.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The user and password the registry accepts.
pub const USER: &str = "hubwasm-test";
pub const PASSWORD: &str = "registry-secret-51f0";

/// A running registry.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry that needs [`USER`] and [`PASSWORD`].
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils; scripts/setup.sh installs it)");
        assert!(htpasswd.status.success());
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let mut registry = Registry {
            child: None,
            port: crate::free_port(),
            dir,
        };
        registry.restart();
        registry
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port, with the same storage.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let config = self.dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{}\n  secret: hubwasm-test-secret\n\
                 auth:\n  htpasswd:\n    realm: hubwasm-test\n    path: {}\n",
                self.dir.path().join("data").display(),
                self.port,
                self.dir.path().join("htpasswd").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (scripts/setup.sh installs it)");
        self.child = Some(child);
        crate::wait_listening(self.port, "docker-registry", Duration::from_secs(30));
    }

    /// Stop it (an outage).
    pub fn stop(&mut self) {
        crate::kill(&mut self.child);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
