//! What a client can make the endpoint hold is bounded (`Limits`), and released on every exit
//! path: connections, the handshake, frames before the open, channels and handles, incomplete
//! deliveries, queued replies, tokens, receivers of a dropped socket, connect/disconnect cycles.

use hubwasm_testkit::raw;

use raw::*;

#[tokio::test]
async fn re_attaching_a_receiver_on_its_handle_replaces_it_without_leaking_its_reader() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    client.authorize(0).await;
    // More re-attaches than a partition allows receivers (5): each used to leave its
    // predecessor registered, until the partition refused everyone.
    for round in 0..8 {
        assert_eq!(client.receive(0, 7).await, None, "round {round}");
        assert_eq!(partition.reader_count("$Default"), 1, "round {round}");
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn re_beginning_a_session_on_its_channel_releases_its_receivers() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
    let mut client = Client::open(&hub).await;
    for round in 0..8 {
        client.begin(3).await;
        client.until(code::BEGIN).await;
        client.authorize(3).await;
        assert_eq!(client.receive(3, 0).await, None, "round {round}");
        assert_eq!(partition.reader_count("$Default"), 1, "round {round}");
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_channel_above_the_announced_channel_max_closes_the_connection() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let mut client = Client::open(&hub).await;
    client.begin(256).await;
    let description = client.closed_with(condition::RESOURCE_LIMIT).await;
    assert!(description.contains("256"), "{description}");
    assert!(description.contains("limits.max_"), "{description}");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_handle_above_the_announced_handle_max_closes_the_connection() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    client.until(code::BEGIN).await;
    client.attach(0, 256, Role::Sender, "$cbs").await;
    let description = client.closed_with(condition::RESOURCE_LIMIT).await;
    assert!(description.contains("256"), "{description}");
    assert!(description.contains("limits.max_"), "{description}");
    hub.shutdown().await;
}

#[tokio::test]
async fn replies_waiting_for_credit_are_bounded() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    // Requests to $management on handle 0; its replies on handle 1, which gets no credit yet.
    client.attach(0, 0, Role::Sender, "$management").await;
    client.attach(0, 1, Role::Receiver, "$management").await;
    let request = |id: &str| {
        let mut m = Message::with_value(Value::Null);
        m.set_property(property::MESSAGE_ID, Value::string(id));
        m.application_properties = vec![(Value::string("operation"), Value::string("READ"))];
        m.to_bytes()
    };
    let send = async |client: &mut Client, delivery_id: u32, id: &str| {
        let transfer = Transfer {
            handle: 0,
            delivery_id: Some(delivery_id),
            delivery_tag: Some(delivery_id.to_be_bytes().to_vec()),
            message_format: Some(0),
            settled: Some(true),
            ..Transfer::default()
        };
        client
            .send_frame(Frame {
                payload: request(id),
                ..Frame::amqp(0, transfer.to_value())
            })
            .await;
    };
    for i in 0..1100u32 {
        send(&mut client, i, "ignored").await;
    }
    // Now credit for every reply, then a marker request: the replies before the marker's are
    // the ones that were kept.
    let flow = Flow {
        incoming_window: 5000,
        next_outgoing_id: 1100,
        outgoing_window: 5000,
        handle: Some(1),
        delivery_count: Some(0),
        link_credit: Some(5000),
        ..Flow::default()
    };
    client.send(0, flow.to_value()).await;
    send(&mut client, 1100, "marker").await;
    let mut before_marker = 0;
    loop {
        let frame = client.until(code::TRANSFER).await;
        let transfer = Transfer::from_value(frame.body.as_ref().unwrap()).unwrap();
        assert_eq!(transfer.handle, 1);
        let reply = Message::decode(&frame.payload).unwrap();
        if reply.property(property::CORRELATION_ID) == Some(&Value::string("marker")) {
            break;
        }
        before_marker += 1;
    }
    assert_eq!(
        before_marker, 1000,
        "replies kept while the reply link had no credit"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn the_tokens_a_connection_keeps_are_bounded() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    client.attach(0, 100, Role::Sender, "$cbs").await;
    client.attach(0, 101, Role::Receiver, "$cbs").await;
    client.put_token(0, "sb://localhost/events", 0).await;
    // More tokens for other entities than a connection keeps: the oldest go.
    for i in 0..1100u32 {
        client
            .put_token(0, &format!("sb://localhost/other-{i}"), i + 1)
            .await;
    }
    client.attach(0, 5, Role::Sender, "events").await;
    loop {
        let frame = client.next().await.expect("the connection is open");
        let body = frame.body.unwrap();
        match body.descriptor_code() {
            Some(code::DETACH) => {
                let detach = hubwasm_hub::amqp::performative::Detach::from_value(&body).unwrap();
                assert_eq!(detach.handle, 5);
                let error = detach.error.expect("refused");
                assert_eq!(error.condition, condition::UNAUTHORIZED);
                break;
            }
            Some(code::FLOW) => {
                let flow = Flow::from_value(&body).unwrap();
                assert_ne!(flow.handle, Some(5), "still authorized by its first token");
            }
            _ => {}
        }
    }
    // A new token is kept (in place of the oldest).
    client.put_token(0, "sb://localhost/events", 2000).await;
    client.attach(0, 6, Role::Sender, "events").await;
    loop {
        let frame = client.until(code::FLOW).await;
        if Flow::from_value(frame.body.as_ref().unwrap())
            .unwrap()
            .handle
            == Some(6)
        {
            break;
        }
    }
    hub.shutdown().await;
}

/// Waits until `done` holds (polling), for at most 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn quick_handshake() -> Limits {
    Limits {
        handshake_timeout_ms: 300,
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_dropped_after_the_handshake_timeout() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with(data.path(), quick_handshake()).await;
    let stream = TcpStream::connect(hub.local_addr()).await.unwrap();
    let mut client = Client {
        stream,
        buf: Vec::new(),
    };
    assert!(client.dropped_within(Duration::from_secs(5)).await);
    eventually("its slot is given back", || {
        hub.namespace().connection_count() == 0
    })
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stalls_in_sasl_is_dropped_after_the_handshake_timeout() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with(data.path(), quick_handshake()).await;
    let mut stream = TcpStream::connect(hub.local_addr()).await.unwrap();
    stream.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
    let mut client = Client {
        stream,
        buf: Vec::new(),
    };
    // Header and mechanisms come; no sasl-init is sent.
    assert!(client.dropped_within(Duration::from_secs(5)).await);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_client_that_sends_no_open_is_closed_naming_the_handshake_timeout() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with(data.path(), quick_handshake()).await;
    let mut client = Client::header(&hub).await;
    let open = client.until(code::OPEN).await;
    assert!(Open::from_value(open.body.as_ref().unwrap()).is_some());
    let description = client.closed_with(condition::RESOURCE_LIMIT).await;
    assert!(
        description.contains("limits.handshake_timeout_ms") && description.contains("300"),
        "{description}"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_frame_before_the_open_is_at_most_512_bytes() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let mut client = Client::header(&hub).await;
    client.send_open(&"x".repeat(600)).await;
    client.until(code::OPEN).await;
    let description = client.closed_with(condition::FRAMING_ERROR).await;
    assert!(description.contains("512"), "{description}");
    // An open that fits is served.
    let mut client = Client::header(&hub).await;
    client.send_open(&"x".repeat(400)).await;
    client.until(code::OPEN).await;
    client.begin(0).await;
    client.until(code::BEGIN).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn connections_above_the_limit_are_refused_naming_it_while_the_others_go_on() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with(
        data.path(),
        Limits {
            max_connections: 2,
            ..Limits::default()
        },
    )
    .await;
    let first = Client::open(&hub).await;
    let mut second = Client::open(&hub).await;
    let mut third = Client::header(&hub).await;
    third.send_open("one-too-many").await;
    third.until(code::OPEN).await;
    let description = third.closed_with(condition::RESOURCE_LIMIT).await;
    assert!(
        description.contains("limits.max_connections") && description.contains('2'),
        "{description}"
    );
    assert!(third.dropped_within(Duration::from_secs(5)).await);
    // The others are served.
    second.begin(0).await;
    second.until(code::BEGIN).await;
    // A place that is given back can be taken.
    drop(first);
    eventually("the first connection's place is given back", || {
        hub.namespace().connection_count() == 1
    })
    .await;
    let mut fourth = Client::open(&hub).await;
    fourth.begin(0).await;
    fourth.until(code::BEGIN).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn deliveries_still_arriving_are_bounded_per_connection_even_before_authentication() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with(
        data.path(),
        Limits {
            max_message_bytes: 64 * 1024,
            max_incomplete_bytes_per_connection: 128 * 1024,
            ..Limits::default()
        },
    )
    .await;
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    // No token: three $cbs request links, each with a delivery under the message size.
    for handle in 0..3 {
        client.attach(0, handle, Role::Sender, "$cbs").await;
    }
    client.transfer(0, 0, true, true, vec![0; 60 * 1024]).await;
    client.transfer(1, 1, true, true, vec![0; 60 * 1024]).await;
    // 120 KiB held; 20 KiB more would pass 128 KiB.
    client.transfer(2, 2, true, true, vec![0; 20 * 1024]).await;
    client.transfer(2, 2, false, false, vec![0; 10]).await;
    match client.outcome(2).await {
        DeliveryState::Rejected(Some(error)) => {
            assert_eq!(error.condition, condition::RESOURCE_LIMIT);
            let description = error.description.unwrap_or_default();
            assert!(
                description.contains("limits.max_incomplete_bytes_per_connection"),
                "{description}"
            );
        }
        other => panic!("delivery 2: {other:?}"),
    }
    // The first two complete; what they held is given back, so a third fits now.
    client.transfer(0, 0, false, false, vec![]).await;
    client.transfer(1, 1, false, false, vec![]).await;
    client.transfer(2, 3, true, true, vec![0; 60 * 1024]).await;
    client.transfer(2, 3, false, false, vec![]).await;
    assert!(
        matches!(client.outcome(3).await, DeliveryState::Accepted),
        "a delivery within the limit is taken"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_dropped_socket_releases_its_receivers_places_on_the_partition() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    client.authorize(0).await;
    // Every place of the consumer group on the partition (5, as Event Hubs).
    for handle in 0..5 {
        assert!(client.receive(0, handle).await.is_none());
    }
    let refused = client
        .receive(0, 5)
        .await
        .expect("a sixth receiver is refused");
    assert_eq!(refused.condition, condition::RESOURCE_LIMIT);
    // One more attach, and the socket goes before its answer is read.
    client.attach(0, 6, Role::Receiver, PARTITION).await;
    drop(client);
    eventually("the readers of the dropped connection are released", || {
        partition.reader_count("$Default") == 0
    })
    .await;
    let mut other = Client::open(&hub).await;
    other.begin(0).await;
    other.authorize(0).await;
    assert!(other.receive(0, 0).await.is_none());
    hub.shutdown().await;
}

#[tokio::test]
async fn connect_and_disconnect_cycles_leave_no_tasks_readers_or_connections_behind() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
    let metrics = tokio::runtime::Handle::current().metrics();
    // One client in, out, to let anything started once (timers, the syncer) start.
    drop(Client::open(&hub).await);
    eventually("the first connection ends", || {
        hub.namespace().connection_count() == 0
    })
    .await;
    let baseline = metrics.num_alive_tasks();
    for round in 0..30 {
        let mut client = Client::open(&hub).await;
        client.begin(0).await;
        client.authorize(0).await;
        assert!(client.receive(0, 0).await.is_none(), "round {round}");
        // Some rounds close politely, the others drop the socket.
        if round % 2 == 0 {
            client
                .send(0, hubwasm_hub::amqp::performative::close(None))
                .await;
            client.until(code::CLOSE).await;
        }
    }
    eventually("every connection's tasks end", || {
        metrics.num_alive_tasks() <= baseline
            && partition.reader_count("$Default") == 0
            && hub.namespace().connection_count() == 0
    })
    .await;
    hub.shutdown().await;
}

/// Give `handle` of channel 0 `credit` (a receiver link's flow).
async fn credit(client: &mut Client, handle: u32, credit: u32) {
    let flow = Flow {
        incoming_window: 5000,
        next_outgoing_id: 0,
        outgoing_window: 5000,
        handle: Some(handle),
        delivery_count: Some(0),
        link_credit: Some(credit),
        ..Flow::default()
    };
    client.send(0, flow.to_value()).await;
}

#[tokio::test]
async fn a_receiver_whose_reads_fail_is_detached_and_gives_its_place_back() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub(data.path()).await;
    let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
    let events: Vec<Message> = (0..10u8)
        .map(|i| Message::with_data(vec![i; 100]))
        .collect();
    partition.append(&events).unwrap();
    // The log's records vanish under the endpoint (a disk fault, a careless hand): the
    // index still lists them, every read of them fails.
    for segment in std::fs::read_dir(data.path().join("events").join("0")).unwrap() {
        let path = segment.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    client.authorize(0).await;
    assert!(client.receive(0, 0).await.is_none());
    assert_eq!(partition.reader_count("$Default"), 1);
    // Credit: its pump reads, and fails.
    credit(&mut client, 0, 10).await;
    let error = loop {
        let frame = client.until(code::DETACH).await;
        let detach = Detach::from_value(frame.body.as_ref().unwrap()).unwrap();
        if detach.handle == 0 {
            assert!(detach.closed);
            break detach.error.expect("detached with an error");
        }
    };
    assert_eq!(error.condition, condition::INTERNAL_ERROR, "{error:?}");
    let description = error.description.unwrap_or_default();
    assert!(description.contains("partition 0"), "{description}");
    // Its place is given back: the consumer group's five places are all free.
    eventually("the failed receiver's place is given back", || {
        partition.reader_count("$Default") == 0
    })
    .await;
    for handle in 1..=5 {
        assert!(
            client.receive(0, handle).await.is_none(),
            "receiver {handle}"
        );
    }
    hub.shutdown().await;
}

/// An endpoint whose partition 0 of `events` holds 64 events of `event_bytes`, with the given
/// write-stall timeout.
async fn filled(
    data: &std::path::Path,
    write_stall_timeout_ms: u64,
    event_bytes: usize,
) -> (
    hubwasm_hub::RunningHub,
    std::sync::Arc<hubwasm_hub::server::namespace::Namespace>,
    std::sync::Arc<hubwasm_hub::server::namespace::Partition>,
) {
    let hub = hub_with(
        data,
        Limits {
            write_stall_timeout_ms,
            ..Limits::default()
        },
    )
    .await;
    let ns = hub.namespace().clone();
    let partition = ns.hub("events").unwrap().partitions[0].clone();
    for _ in 0..8 {
        let batch: Vec<Message> = (0..8)
            .map(|_| Message::with_data(vec![7; event_bytes]))
            .collect();
        partition.append(&batch).unwrap();
    }
    (hub, ns, partition)
}

/// A receiver on partition 0 with credit for 1000 events whose client reads nothing (its
/// socket's receive buffer is kept small).
async fn stalled_receiver(hub: &hubwasm_hub::RunningHub) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(hub.local_addr()).await.unwrap();
    let mut stalled = Client::open_on(stream).await;
    stalled.begin(0).await;
    stalled.authorize(0).await;
    assert!(stalled.receive(0, 0).await.is_none());
    credit(&mut stalled, 0, 1000).await;
    stalled
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_stall_timeout_and_releases_everything(
) {
    let data = tempfile::tempdir().unwrap();
    // Far more than the socket buffers hold (the client's is kept small).
    let (hub, ns, partition) = filled(data.path(), 500, 256 * 1024).await;
    // Another client, connected first: it is served while the stalled one is stuck.
    let mut other = Client::open(&hub).await;
    other.begin(0).await;
    other.until(code::BEGIN).await;
    other.authorize(0).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks = metrics.num_alive_tasks();

    let mut stalled = stalled_receiver(&hub).await;
    assert_eq!(ns.connection_count(), 2);
    other.begin(1).await;
    other.until(code::BEGIN).await;

    eventually(
        "the stalled connection's place and its receiver's place are given back",
        || {
            ns.connection_count() == 1
                && partition.reader_count("$Default") == 0
                && metrics.num_alive_tasks() <= tasks
        },
    )
    .await;
    // Every place of the consumer group is free again.
    for handle in 0..5 {
        assert!(
            other.receive(0, handle).await.is_none(),
            "receiver {handle}"
        );
    }
    // The stalled client finds its socket closed once it reads again.
    assert!(stalled.dropped_within(Duration::from_secs(10)).await);
    hub.shutdown().await;
}

#[tokio::test]
async fn the_receivers_per_partition_limit_is_configurable_and_named_when_reached() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with(
        data.path(),
        Limits {
            max_receivers_per_partition: 2,
            ..Limits::default()
        },
    )
    .await;
    let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    client.authorize(0).await;
    assert!(client.receive(0, 0).await.is_none());
    assert!(client.receive(0, 1).await.is_none());
    let refused = client
        .receive(0, 2)
        .await
        .expect("a third receiver is refused");
    assert_eq!(refused.condition, condition::RESOURCE_LIMIT);
    let description = refused.description.unwrap_or_default();
    assert!(
        description.contains("limits.max_receivers_per_partition")
            && description.contains("at most 2"),
        "{description}"
    );
    assert_eq!(partition.reader_count("$Default"), 2);
    // A detach gives a place back.
    let detach = Detach {
        handle: 0,
        closed: true,
        error: None,
    };
    client.send(0, detach.to_value()).await;
    assert!(client.receive(0, 3).await.is_none());
    hub.shutdown().await;
}

#[tokio::test]
async fn a_receiver_that_does_not_read_makes_the_endpoint_hold_one_batch_not_the_partition() {
    let data = tempfile::tempdir().unwrap();
    // 64 MiB: far more than one read batch (4 MiB) and the socket buffers.
    let (hub, ns, _) = filled(data.path(), 4000, 1024 * 1024).await;
    let _stalled = stalled_receiver(&hub).await;
    let mut most = 0;
    for _ in 0..200 {
        most = most.max(ns.queued_bytes());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        most > 0 && most <= 12 << 20,
        "at most {} MiB waited for the socket",
        most >> 20
    );
    // Dropped at the stall timeout: nothing waits any more.
    eventually("the stalled connection ends and its queue is freed", || {
        ns.connection_count() == 0 && ns.queued_bytes() == 0
    })
    .await;
    hub.shutdown().await;
}
