//! test-sandbox: on every event, tries to escape the sandbox: read `/etc/passwd`, list `/` and
//! `.`, read environment variables, open a TCP connection, send a UDP datagram, resolve a name.
//! Prints one line per attempt to stdout (`sandbox: <what>: denied (<io error kind>: ...)`) and
//! rejects the event naming what succeeded, if anything did.
//!
//! Config (optional): `tcp_port` / `udp_port`: where on 127.0.0.1 to connect and send (a test
//! listens there, so an allowed attempt would reach it); default 80 and 53.

use hubwasm_guest::{export_plugin, reject, Config, Event, EventError, PartitionContext, Plugin};

struct Sandbox {
    tcp_port: u16,
    udp_port: u16,
}

fn report<T, E: std::fmt::Debug>(what: &str, result: Result<T, E>, escaped: &mut Vec<String>) {
    match result {
        Ok(_) => {
            println!("sandbox: {what}: ALLOWED");
            escaped.push(what.to_string());
        }
        Err(err) => println!("sandbox: {what}: denied ({err:?})"),
    }
}

fn io<T>(result: std::io::Result<T>) -> Result<T, String> {
    result.map_err(|e| format!("{:?}: {e}", e.kind()))
}

fn non_empty_dir(path: &str) -> Result<usize, String> {
    let entries = std::fs::read_dir(path).map_err(|e| e.to_string())?;
    match entries.count() {
        0 => Err("empty".into()),
        n => Ok(n),
    }
}

impl Plugin for Sandbox {
    fn init(config: Config) -> Result<Self, String> {
        Ok(Sandbox {
            tcp_port: config.parse("tcp_port")?.unwrap_or(80),
            udp_port: config.parse("udp_port")?.unwrap_or(53),
        })
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
            "tcp connect",
            io(std::net::TcpStream::connect(("127.0.0.1", self.tcp_port))),
            &mut escaped,
        );
        report(
            "udp send",
            io(std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.send_to(b"escape", ("127.0.0.1", self.udp_port)))),
            &mut escaped,
        );
        report(
            "dns lookup",
            io(std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).map(|a| a.count())),
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
