//! The official Python SDK (`azure-eventhub`) against the embedded endpoint, unchanged: only a
//! connection string with `UseDevelopmentEmulator=true`. The scripts live in `tests/python/`;
//! `scripts/setup.sh` installs the SDK into a venv.

use std::path::Path;
use std::process::Command;

use hubwasm_hub::config::{EventHubConfig, HubConfig};
use hubwasm_hub::RunningHub;
use serde_json::Value as Json;

/// Run a script; returns its JSON result, or panics with its stderr.
async fn run(name: &str, conn: &str, args: &[&str]) -> Json {
    let output = run_raw(name, conn, args).await;
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{name} printed no JSON ({e}):\n{stdout}"))
}

async fn run_raw(name: &str, conn: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(python::binary());
    cmd.arg(python::script(name))
        .arg("--conn")
        .arg(conn)
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run python"))
        .await
        .unwrap()
}

fn config(data: &Path, partitions: u32) -> HubConfig {
    HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        event_hubs: vec![EventHubConfig {
            name: "telemetry".into(),
            partitions,
            consumer_groups: vec!["analytics".into()],
        }],
        ..HubConfig::default()
    }
}

async fn start(data: &Path, partitions: u32) -> RunningHub {
    hubwasm_hub::start(config(data, partitions))
        .await
        .expect("endpoint starts")
}

fn events(result: &Json) -> &Vec<Json> {
    result["events"].as_array().expect("events")
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_reads_event_hub_and_partition_properties() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 3).await;
    let conn = hub.connection_string("telemetry");
    let props = run("eh_properties.py", &conn, &[]).await;
    assert_eq!(props["name"], "telemetry");
    assert_eq!(props["partition_ids"], serde_json::json!(["0", "1", "2"]));
    let p0 = &props["partitions"]["0"];
    assert_eq!(p0["last_enqueued_sequence_number"], -1);
    assert_eq!(p0["last_enqueued_offset"], "-1");
    assert_eq!(p0["is_empty"], true);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_producer_by_partition_and_by_key_and_consumer_from_earliest() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 4).await;
    let conn = hub.connection_string("telemetry");
    run(
        "eh_send.py",
        &conn,
        &["--count", "5", "--partition-id", "2", "--batch"],
    )
    .await;
    run(
        "eh_send.py",
        &conn,
        &[
            "--count",
            "4",
            "--start",
            "6",
            "--partition-key",
            "device-7",
        ],
    )
    .await;
    run("eh_send.py", &conn, &["--count", "4", "--start", "10"]).await;

    let got = run(
        "eh_receive.py",
        &conn,
        &["--expect", "13", "--timeout", "40"],
    )
    .await;
    let evs = events(&got);
    assert_eq!(evs.len(), 13, "{got}");
    let ids: std::collections::BTreeSet<i64> = evs
        .iter()
        .map(|e| {
            let body: Json = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["value"], body["message_id"].as_i64().unwrap() * 10);
            assert_eq!(e["properties"]["kind"], "test");
            body["message_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids, (1..=13).collect(), "every event exactly once");

    // By partition id: all five on partition 2, sequence numbers 0..4 in order.
    let by_id: Vec<&Json> = evs
        .iter()
        .filter(|e| (1..=5).contains(&message_id(e)))
        .collect();
    assert!(by_id.iter().all(|e| e["partition"] == "2"), "{by_id:?}");
    // By key: one partition for the key, the key comes back.
    let keyed: Vec<&Json> = evs
        .iter()
        .filter(|e| (6..=9).contains(&message_id(e)))
        .collect();
    assert!(keyed
        .iter()
        .all(|e| e["partition"] == keyed[0]["partition"]));
    assert!(keyed.iter().all(|e| e["partition_key"] == "device-7"));
    // Sequence numbers per partition are consecutive from 0 and offsets increase.
    for p in ["0", "1", "2", "3"] {
        let mut mine: Vec<&Json> = evs.iter().filter(|e| e["partition"] == p).collect();
        mine.sort_by_key(|e| e["sequence_number"].as_i64());
        for (i, e) in mine.iter().enumerate() {
            assert_eq!(
                e["sequence_number"].as_i64(),
                Some(i as i64),
                "partition {p}"
            );
        }
        let offsets: Vec<i64> = mine
            .iter()
            .map(|e| e["offset"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    }
    // Round-robin spread the unkeyed, unpinned events over more than one partition.
    let spread: std::collections::BTreeSet<&str> = evs
        .iter()
        .filter(|e| message_id(e) >= 10)
        .map(|e| e["partition"].as_str().unwrap())
        .collect();
    assert!(spread.len() > 1, "{spread:?}");
    hub.shutdown().await;
}

fn message_id(e: &Json) -> i64 {
    let body: Json = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
    body["message_id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_asks_for_runtime_metrics_sees_the_last_enqueued_event() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 1).await;
    let conn = hub.connection_string("telemetry");
    run(
        "eh_send.py",
        &conn,
        &["--count", "4", "--partition-id", "0", "--batch"],
    )
    .await;
    let got = run(
        "eh_receive.py",
        &conn,
        &[
            "--expect",
            "2",
            "--partition-id",
            "0",
            "--track-last-enqueued",
        ],
    )
    .await;
    let events = events(&got);
    assert_eq!(events.len(), 2);
    for event in events {
        let last = &event["last_enqueued"];
        assert_eq!(last["sequence_number"], 3, "{event}");
        // Offsets are byte positions: the last event's is past this one's.
        let offset = |v: &serde_json::Value| v.as_str().unwrap().parse::<u64>().unwrap();
        assert!(
            offset(&last["offset"]) > offset(&event["offset"]),
            "{event}"
        );
        assert!(last["enqueued_time"].is_string(), "{event}");
        assert!(last["retrieval_time"].is_string(), "{event}");
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_consumer_starts_after_a_sequence_number_and_consumer_groups_are_independent() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 1).await;
    let conn = hub.connection_string("telemetry");
    run(
        "eh_send.py",
        &conn,
        &["--count", "6", "--partition-id", "0", "--batch"],
    )
    .await;
    let got = run(
        "eh_receive.py",
        &conn,
        &[
            "--expect",
            "3",
            "--starting-position",
            "2",
            "--partition-id",
            "0",
        ],
    )
    .await;
    let seqs: Vec<i64> = events(&got)
        .iter()
        .map(|e| e["sequence_number"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4, 5], "exclusive start after 2");
    let got = run(
        "eh_receive.py",
        &conn,
        &["--expect", "6", "--consumer-group", "analytics"],
    )
    .await;
    assert_eq!(
        events(&got).len(),
        6,
        "another consumer group reads everything"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_written_before_a_restart_is_read_after_it_with_sequence_numbers_continuing() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 2).await;
    let conn = hub.connection_string("telemetry");
    run(
        "eh_send.py",
        &conn,
        &["--count", "3", "--partition-id", "1"],
    )
    .await;
    hub.shutdown().await;

    let hub = start(data.path(), 2).await;
    let conn = hub.connection_string("telemetry");
    run(
        "eh_send.py",
        &conn,
        &["--count", "2", "--start", "4", "--partition-id", "1"],
    )
    .await;
    let got = run(
        "eh_receive.py",
        &conn,
        &["--expect", "5", "--partition-id", "1"],
    )
    .await;
    let mut pairs: Vec<(i64, i64)> = events(&got)
        .iter()
        .map(|e| (e["sequence_number"].as_i64().unwrap(), message_id(e)))
        .collect();
    pairs.sort();
    assert_eq!(pairs, vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_and_expired_token_give_an_authentication_error() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 1).await;
    let conn = hub
        .connection_string("telemetry")
        .replace("SAS_KEY_VALUE", "not-the-key");
    let got = run("eh_wrong_key.py", &conn, &[]).await;
    assert_eq!(got["error_type"], "AuthenticationError");
    assert!(
        got["message"]
            .as_str()
            .unwrap()
            .contains("signature does not match"),
        "{got}"
    );

    let port = hub.local_addr().port();
    let resource = format!("sb://localhost:{port}/telemetry");
    let expired =
        hubwasm_hub::sas::sign(&resource, "RootManageSharedAccessKey", "SAS_KEY_VALUE", 1);
    let conn = format!(
        "Endpoint=sb://localhost:{port};SharedAccessSignature={expired};\
         UseDevelopmentEmulator=true;EntityPath=telemetry"
    );
    let got = run("eh_wrong_key.py", &conn, &[]).await;
    assert!(
        got["message"].as_str().unwrap().contains("expired"),
        "{got}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_event_hub_is_reported_and_garbage_clients_do_not_disturb_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 1).await;
    let addr = hub.local_addr();

    // Not AMQP at all: the endpoint answers with its protocol header and closes.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut header = [0u8; 8];
    raw.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, b"AMQP\x00\x01\x00\x00");
    // A valid header then a frame that lies about its size, then a truncated frame.
    for junk in [
        &[0u8, 0, 0, 4, 2, 0, 0, 0][..],
        &[0, 0, 0, 40, 2, 0, 0, 0, 0x00, 0x53],
    ] {
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
        raw.write_all(junk).await.unwrap();
        raw.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest).await;
        assert!(rest.starts_with(b"AMQP"), "{rest:?}");
    }

    // Meanwhile a real client is unaffected; an unknown hub is a clear not-found.
    let conn = hub.connection_string("telemetry");
    run("eh_send.py", &conn, &["--count", "1"]).await;
    let wrong = hub.connection_string("nope");
    let output = run_raw("eh_properties.py", &wrong, &[]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("event hub `nope` does not exist"),
        "{stderr}"
    );
    let props = run("eh_properties.py", &conn, &[]).await;
    assert_eq!(props["partitions"]["0"]["last_enqueued_sequence_number"], 0);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_higher_owner_level_takes_the_partition_and_the_other_receiver_is_told_it_was_stolen() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path(), 1).await;
    let conn = hub.connection_string("telemetry");
    run(
        "eh_send.py",
        &conn,
        &["--count", "1", "--partition-id", "0"],
    )
    .await;

    // Receiver A (owner level 1) waits for more events than there will be.
    let first = {
        let conn = conn.clone();
        tokio::spawn(async move {
            run(
                "eh_receive.py",
                &conn,
                &[
                    "--expect",
                    "5",
                    "--partition-id",
                    "0",
                    "--owner-level",
                    "1",
                    "--timeout",
                    "15",
                ],
            )
            .await
        })
    };
    let partition = hub.namespace().hub("telemetry").unwrap().partitions[0].clone();
    for _ in 0..400 {
        if partition.reader_count("$Default") == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(partition.reader_count("$Default"), 1, "receiver A attached");

    // Receiver B with owner level 2 takes over and reads the partition.
    let second = run(
        "eh_receive.py",
        &conn,
        &["--expect", "1", "--partition-id", "0", "--owner-level", "2"],
    )
    .await;
    assert_eq!(events(&second).len(), 1);
    let first = first.await.unwrap();
    let errors = first["errors"].to_string();
    assert!(errors.contains("amqp:link:stolen"), "{first}");
    assert!(errors.contains("higher epoch (2)"), "{first}");
    hub.shutdown().await;
}

use hubwasm_testkit::python;
