//! test-sandbox: on every event, tries to escape the sandbox: read `/etc/passwd`, list `/` and
//! `.`, read environment variables, open a TCP connection. Prints one line per attempt to stdout
//! and rejects the event naming what succeeded, if anything did. No config.

use hubwasm_guest::{export_plugin, reject, Config, Event, EventError, PartitionContext, Plugin};

struct Sandbox;

fn report<T, E: std::fmt::Debug>(what: &str, result: Result<T, E>, escaped: &mut Vec<String>) {
    match result {
        Ok(_) => {
            println!("sandbox: {what}: ALLOWED");
            escaped.push(what.to_string());
        }
        Err(err) => println!("sandbox: {what}: denied ({err:?})"),
    }
}

fn non_empty_dir(path: &str) -> Result<usize, String> {
    let entries = std::fs::read_dir(path).map_err(|e| e.to_string())?;
    match entries.count() {
        0 => Err("empty".into()),
        n => Ok(n),
    }
}

impl Plugin for Sandbox {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Sandbox)
    }

    fn handle(&mut self, _ctx: &PartitionContext, _event: Event<'_>) -> Result<(), EventError> {
        let mut escaped = Vec::new();
        report(
            "read /etc/passwd",
            std::fs::read("/etc/passwd"),
            &mut escaped,
        );
        report("list /", non_empty_dir("/"), &mut escaped);
        report("list .", non_empty_dir("."), &mut escaped);
        let vars = std::env::vars().count();
        report(
            "read environment",
            if vars > 0 {
                Ok(vars)
            } else {
                Err("no variables")
            },
            &mut escaped,
        );
        report("read $HOME", std::env::var("HOME"), &mut escaped);
        report(
            "connect 127.0.0.1:80",
            std::net::TcpStream::connect("127.0.0.1:80"),
            &mut escaped,
        );
        if escaped.is_empty() {
            Ok(())
        } else {
            Err(reject(format!("sandbox escape: {}", escaped.join(", "))))
        }
    }
}

export_plugin!(Sandbox);
