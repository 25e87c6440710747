//! Stopping is bounded: SIGTERM ends a host even while it waits on an endpoint that accepted
//! its connection and never answers (a half-open network, an endpoint stuck mid-restart).

use std::time::Duration;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_host_whose_endpoint_never_answers() {
    let t = Local::start(1).await;
    // A listener that takes connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let real = format!("localhost:{}", t.endpoint.local_addr().port());
    let cfg = t
        .config("")
        .replace(&real, &format!("127.0.0.1:{silent_port}"));
    assert!(cfg.contains(&format!("127.0.0.1:{silent_port}")), "{cfg}");
    let mut host = Host::start("stuck", t.path(), &cfg, &[]);
    // Long enough for the host to connect and wait on the silent endpoint.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        host.still_running(),
        "the host waits for the endpoint:\n{}",
        host.log()
    );
    // `terminate` allows 60 s: a host that waits on the endpoint forever fails there.
    let status = tokio::task::block_in_place(|| host.terminate());
    assert!(status.success(), "{status}\n{}", host.log());
    held.abort();
    t.endpoint.shutdown().await;
}
