//! Security as Event Hubs has it, at the frame level: policy rights (Send, Listen, Manage),
//! entities not told apart before a token, and links detached when their token expires unless
//! it was renewed.

use hubwasm_testkit::raw;

use hubwasm_hub::config::{PolicyConfig, Right};
use hubwasm_hub::sas::sign;
use raw::*;

async fn hub_with_policies(data: &std::path::Path) -> RunningHub {
    let policy = |name: &str, rights: Vec<Right>| PolicyConfig {
        name: name.into(),
        key: format!("key-of-{name}"),
        rights,
    };
    hubwasm_hub::start(HubConfig {
        policies: vec![
            policy("manager", vec![Right::Manage]),
            policy("listener", vec![Right::Listen]),
            policy("sender", vec![Right::Send]),
        ],
        ..raw::config(data)
    })
    .await
    .unwrap()
}

/// A client on channel 0 with `$cbs` links and a namespace-wide token of `policy`.
async fn client_of(hub: &RunningHub, policy: &str, expires: u64) -> Client {
    let mut client = Client::open(hub).await;
    client.begin(0).await;
    client.attach(0, 100, Role::Sender, "$cbs").await;
    client.attach(0, 101, Role::Receiver, "$cbs").await;
    let resource = "sb://localhost/";
    let token = sign(resource, policy, &format!("key-of-{policy}"), expires);
    client.put_signed(0, resource, &token, 0).await;
    client
}

fn assert_unauthorized(refused: Option<AmqpError>, what: &str, mentions: &str) {
    let error = refused.unwrap_or_else(|| panic!("{what} was attached"));
    assert_eq!(
        error.condition,
        condition::UNAUTHORIZED,
        "{what}: {error:?}"
    );
    let description = error.description.unwrap_or_default();
    assert!(description.contains(mentions), "{what}: {description}");
}

#[tokio::test]
async fn a_listen_only_key_cannot_send_a_send_only_key_cannot_receive_and_manage_does_both() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with_policies(data.path()).await;
    let in_an_hour = unix_now() + 3600;

    let mut listener = client_of(&hub, "listener", in_an_hour).await;
    assert!(listener.receive(0, 1).await.is_none(), "Listen receives");
    let refused = listener.attached(0, 2, Role::Sender, "events").await;
    assert_unauthorized(refused, "a sender with a Listen key", "Send");
    let refused = listener
        .attached(0, 3, Role::Sender, "events/Partitions/0")
        .await;
    assert_unauthorized(refused, "a partition sender with a Listen key", "listener");

    let mut sender = client_of(&hub, "sender", in_an_hour).await;
    assert!(
        sender
            .attached(0, 1, Role::Sender, "events")
            .await
            .is_none(),
        "Send sends"
    );
    let refused = sender.receive(0, 2).await;
    assert_unauthorized(refused, "a receiver with a Send key", "Listen");

    let mut manager = client_of(&hub, "manager", in_an_hour).await;
    assert!(manager
        .attached(0, 1, Role::Sender, "events")
        .await
        .is_none());
    assert!(manager.receive(0, 2).await.is_none());
    hub.shutdown().await;
}

#[tokio::test]
async fn whether_an_event_hub_exists_is_told_only_to_a_caller_with_a_token_for_it() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with_policies(data.path()).await;
    let mut client = Client::open(&hub).await;
    client.begin(0).await;
    let refused = client.attached(0, 1, Role::Sender, "no-such-hub").await;
    assert_unauthorized(
        refused,
        "a sender to an unknown hub without a token",
        "token",
    );
    let refused = client
        .attached(
            0,
            2,
            Role::Receiver,
            "no-such-hub/ConsumerGroups/$Default/Partitions/0",
        )
        .await;
    assert_unauthorized(
        refused,
        "a receiver of an unknown hub without a token",
        "token",
    );
    // With a token for it, the caller learns it does not exist.
    let mut client = client_of(&hub, "manager", unix_now() + 3600).await;
    let refused = client.attached(0, 1, Role::Sender, "no-such-hub").await;
    let error = refused.expect("refused");
    assert_eq!(error.condition, condition::NOT_FOUND, "{error:?}");
    hub.shutdown().await;
}

/// Frames until a detach of `handle` (its error) or until `within` passes (`None`).
async fn detached_within(client: &mut Client, handle: u32, within: Duration) -> Option<AmqpError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, client.next())
            .await
            .ok()??;
        let body = frame.body.unwrap();
        if body.descriptor_code() == Some(code::DETACH) {
            let detach = Detach::from_value(&body).unwrap();
            if detach.handle == handle {
                return Some(detach.error.expect("a detach with an error"));
            }
        }
    }
}

#[tokio::test]
async fn links_are_detached_when_their_token_expires() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with_policies(data.path()).await;
    let partition = hub.namespace().hub("events").unwrap().partitions[0].clone();
    let mut client = client_of(&hub, "manager", unix_now() + 2).await;
    assert!(client
        .attached(0, 1, Role::Sender, "events")
        .await
        .is_none());
    assert!(client.receive(0, 2).await.is_none());
    let mut detached = Vec::new();
    for _ in 0..2 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let frame = tokio::time::timeout_at(deadline, client.until(code::DETACH))
            .await
            .expect("the links are detached once the token expires");
        let detach = Detach::from_value(frame.body.as_ref().unwrap()).unwrap();
        let error = detach.error.expect("an error");
        assert_eq!(error.condition, condition::UNAUTHORIZED, "{error:?}");
        assert!(error.description.unwrap().contains("expired"));
        detached.push(detach.handle);
    }
    detached.sort();
    assert_eq!(detached, [1, 2]);
    assert_eq!(
        partition.reader_count("$Default"),
        0,
        "the receiver's place is free"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_token_renewed_before_it_expires_keeps_the_links() {
    let data = tempfile::tempdir().unwrap();
    let hub = hub_with_policies(data.path()).await;
    let mut client = client_of(&hub, "manager", unix_now() + 2).await;
    assert!(client
        .attached(0, 1, Role::Sender, "events")
        .await
        .is_none());
    let resource = "sb://localhost/";
    let renewed = sign(resource, "manager", "key-of-manager", unix_now() + 3600);
    client.put_signed(0, resource, &renewed, 1).await;
    assert!(
        detached_within(&mut client, 1, Duration::from_secs(4))
            .await
            .is_none(),
        "the sender was detached although its token was renewed"
    );
    let event = hubwasm_hub::amqp::message::Message::with_data(b"still here".to_vec());
    client.transfer(1, 0, true, false, event.to_bytes()).await;
    assert!(matches!(client.outcome(0).await, DeliveryState::Accepted));
    hub.shutdown().await;
}
