//! The endpoint at the AMQP frame level, with hubwasm's own codec as the client: what no SDK
//! test can show on its own (heartbeats on the client's idle timeout).

use std::time::Duration;

use hubwasm_hub::amqp::frame::Frame;
use hubwasm_hub::amqp::performative::Open;
use hubwasm_hub::config::{EventHubConfig, HubConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AMQP_HEADER: &[u8; 8] = b"AMQP\x00\x01\x00\x00";

async fn read_frame(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Frame {
    loop {
        if let Some(size) = Frame::peek_size(buf, 1 << 20).unwrap() {
            if buf.len() >= size {
                let frame = Frame::decode(&buf[..size]).unwrap();
                buf.drain(..size);
                return frame;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the endpoint closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn the_endpoint_sends_heartbeats_within_the_clients_idle_timeout() {
    let data = tempfile::tempdir().unwrap();
    let hub = hubwasm_hub::start(HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        event_hubs: vec![EventHubConfig {
            name: "telemetry".into(),
            partitions: 1,
            consumer_groups: vec![],
        }],
        ..HubConfig::default()
    })
    .await
    .unwrap();

    let mut stream = tokio::net::TcpStream::connect(hub.local_addr())
        .await
        .unwrap();
    stream.write_all(AMQP_HEADER).await.unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, AMQP_HEADER);

    let open = Open {
        container_id: "heartbeat-test".into(),
        hostname: Some("localhost".into()),
        max_frame_size: 65536,
        channel_max: 1,
        idle_time_out: Some(400),
        offered_capabilities: vec![],
        desired_capabilities: vec![],
        properties: vec![],
    };
    let mut out = Vec::new();
    Frame::amqp(0, open.to_value()).encode(&mut out);
    stream.write_all(&out).await.unwrap();

    let mut buf = Vec::new();
    let reply = read_frame(&mut stream, &mut buf).await;
    let reply = Open::from_value(reply.body.as_ref().expect("an open")).expect("an open");
    assert!(
        reply.idle_time_out.is_some_and(|ms| ms > 0),
        "the endpoint announces its own idle timeout"
    );

    // We stay silent and still get empty frames, again and again (a generous bound only keeps
    // a broken endpoint from hanging the test).
    let mut heartbeats = 0;
    while heartbeats < 3 {
        let frame =
            tokio::time::timeout(Duration::from_secs(10), read_frame(&mut stream, &mut buf))
                .await
                .expect("the endpoint keeps the connection alive with heartbeats");
        if frame.body.is_none() {
            heartbeats += 1;
        }
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_second_endpoint_on_the_same_data_directory_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let config = || HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        ..HubConfig::default()
    };
    let first = hubwasm_hub::start(config()).await.unwrap();
    let err = match hubwasm_hub::start(config()).await {
        Ok(_) => panic!("a second endpoint on the same data directory must be refused"),
        Err(err) => err,
    };
    assert!(matches!(err, hubwasm_hub::StartError::InUse(_)), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    first.shutdown().await;
    // Once the first one stops, the directory is free again.
    hubwasm_hub::start(config()).await.unwrap().shutdown().await;
}
