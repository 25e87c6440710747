//! A raw AMQP client for the endpoint's frame-level tests (`hub_limits`, `hub_security`), built
//! from hubwasm's own codec, and an endpoint with one event hub `events` of one partition.

pub use std::time::Duration;

pub use hubwasm_hub::amqp::frame::Frame;
pub use hubwasm_hub::amqp::message::{property, Message};
pub use hubwasm_hub::amqp::performative::{
    code, condition, error_of, AmqpError, Attach, Begin, DeliveryState, Detach, Disposition, Flow,
    Open, Role, Source, Target, Transfer,
};
pub use hubwasm_hub::amqp::Value;
pub use hubwasm_hub::config::{EventHubConfig, HubConfig, Limits, DEFAULT_POLICY, DEVELOPMENT_KEY};
pub use hubwasm_hub::RunningHub;
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::TcpStream;

pub const AMQP_HEADER: &[u8; 8] = b"AMQP\x00\x01\x00\x00";
pub const PARTITION: &str = "events/ConsumerGroups/$Default/Partitions/0";

pub async fn hub(data: &std::path::Path) -> RunningHub {
    hub_with(data, Limits::default()).await
}

pub async fn hub_with(data: &std::path::Path, limits: Limits) -> RunningHub {
    hubwasm_hub::start(HubConfig {
        limits,
        ..config(data)
    })
    .await
    .unwrap()
}

/// An endpoint on a free loopback port with one event hub `events` of one partition, its data
/// in `data`.
pub fn config(data: &std::path::Path) -> HubConfig {
    HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        event_hubs: vec![EventHubConfig {
            name: "events".into(),
            partitions: 1,
            consumer_groups: vec![],
        }],
        ..HubConfig::default()
    }
}

pub struct Client {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Client {
    /// Connected, AMQP header exchanged, open sent and answered.
    pub async fn open(hub: &RunningHub) -> Client {
        let stream = TcpStream::connect(hub.local_addr()).await.unwrap();
        Client::open_on(stream).await
    }

    /// [`Client::open`] on a stream connected to the endpoint (with socket options of its own).
    pub async fn open_on(stream: TcpStream) -> Client {
        let mut client = Client::header_on(stream).await;
        client.send_open("limits-test").await;
        let reply = client.next().await.expect("an open");
        assert_eq!(reply.body.unwrap().descriptor_code(), Some(code::OPEN));
        client
    }

    /// Connected and AMQP header exchanged.
    pub async fn header(hub: &RunningHub) -> Client {
        let stream = TcpStream::connect(hub.local_addr()).await.unwrap();
        Client::header_on(stream).await
    }

    /// [`Client::header`] on a stream connected to the endpoint.
    pub async fn header_on(mut stream: TcpStream) -> Client {
        stream.write_all(AMQP_HEADER).await.unwrap();
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).await.unwrap();
        assert_eq!(&header, AMQP_HEADER);
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send_open(&mut self, container_id: &str) {
        let open = Open {
            container_id: container_id.into(),
            hostname: Some("localhost".into()),
            max_frame_size: 65536,
            channel_max: u16::MAX,
            idle_time_out: None,
            offered_capabilities: vec![],
            desired_capabilities: vec![],
            properties: vec![],
        };
        self.send(0, open.to_value()).await;
    }

    pub async fn send(&mut self, channel: u16, body: Value) {
        self.send_frame(Frame::amqp(channel, body)).await
    }

    pub async fn send_frame(&mut self, frame: Frame) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next non-empty frame; `None` once the endpoint closed the socket.
    pub async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(size) = Frame::peek_size(&self.buf, 1 << 20).unwrap() {
                    if self.buf.len() >= size {
                        let frame = Frame::decode(&self.buf[..size]).unwrap();
                        self.buf.drain(..size);
                        if frame.body.is_some() {
                            return Some(frame);
                        }
                        continue;
                    }
                }
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("the endpoint answers within 20 s")
    }

    /// Frames until one with descriptor `code` (returned).
    pub async fn until(&mut self, code: u64) -> Frame {
        loop {
            let frame = self.next().await.expect("the connection is open");
            if frame.body.as_ref().and_then(Value::descriptor_code) == Some(code) {
                return frame;
            }
        }
    }

    pub async fn begin(&mut self, channel: u16) {
        let begin = Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: 5000,
            outgoing_window: 5000,
            handle_max: 1000,
            properties: vec![],
        };
        self.send(channel, begin.to_value()).await;
    }

    pub async fn attach(&mut self, channel: u16, handle: u32, role: Role, address: &str) {
        let attach = Attach {
            name: format!("link-{handle}"),
            handle,
            role,
            snd_settle_mode: 1,
            rcv_settle_mode: 0,
            source: Some(Source {
                address: (role == Role::Receiver).then(|| address.to_string()),
                filter: vec![],
            }),
            target: Some(Target {
                address: Some(if role == Role::Sender {
                    address.to_string()
                } else {
                    "client".to_string()
                }),
            }),
            initial_delivery_count: (role == Role::Sender).then_some(0),
            max_message_size: None,
            offered_capabilities: vec![],
            desired_capabilities: vec![],
            properties: vec![],
        };
        self.send(channel, attach.to_value()).await;
    }

    /// Put a namespace-wide SAS token on `$cbs` (links 100 and 101 of `channel`). The endpoint
    /// handles frames in order, so later attaches are authorized without reading the reply.
    pub async fn authorize(&mut self, channel: u16) {
        self.attach(channel, 100, Role::Sender, "$cbs").await;
        self.attach(channel, 101, Role::Receiver, "$cbs").await;
        self.put_token(channel, "sb://localhost/", 0).await;
    }

    /// Put a token for `resource` on the `$cbs` link 100 of `channel`.
    pub async fn put_token(&mut self, channel: u16, resource: &str, delivery_id: u32) {
        let token =
            hubwasm_hub::sas::sign(resource, DEFAULT_POLICY, DEVELOPMENT_KEY, unix_now() + 3600);
        self.put_signed(channel, resource, &token, delivery_id)
            .await;
    }

    /// Put `token` for `resource` on the `$cbs` link 100 of `channel`.
    pub async fn put_signed(
        &mut self,
        channel: u16,
        resource: &str,
        token: &str,
        delivery_id: u32,
    ) {
        let mut request = Message::with_value(Value::string(token));
        request.application_properties = vec![
            (Value::string("operation"), Value::string("put-token")),
            (Value::string("name"), Value::string(resource)),
            (
                Value::string("type"),
                Value::string("servicebus.windows.net:sastoken"),
            ),
        ];
        let transfer = Transfer {
            handle: 100,
            delivery_id: Some(delivery_id),
            delivery_tag: Some(delivery_id.to_be_bytes().to_vec()),
            message_format: Some(0),
            settled: Some(true),
            ..Transfer::default()
        };
        self.send_frame(Frame {
            payload: request.to_bytes(),
            ..Frame::amqp(channel, transfer.to_value())
        })
        .await;
    }

    /// The description of the error the endpoint closes the connection with, which must have
    /// `expected` as its condition.
    pub async fn closed_with(&mut self, expected: &str) -> String {
        let close = self.until(code::CLOSE).await;
        let error = error_of(close.body.as_ref().unwrap()).expect("a close with an error");
        assert_eq!(error.condition, expected, "{error:?}");
        error.description.unwrap_or_default()
    }

    /// Whether the endpoint closes the socket within `within` (reading and dropping what
    /// it sends).
    pub async fn dropped_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    /// Send `payload` on `handle` of channel 0 as one frame of delivery `id` (unsettled).
    pub async fn transfer(
        &mut self,
        handle: u32,
        id: u32,
        first: bool,
        more: bool,
        payload: Vec<u8>,
    ) {
        let transfer = Transfer {
            handle,
            delivery_id: first.then_some(id),
            delivery_tag: first.then(|| id.to_be_bytes().to_vec()),
            message_format: first.then_some(0),
            settled: first.then_some(false),
            more,
            ..Transfer::default()
        };
        self.send_frame(Frame {
            payload,
            ..Frame::amqp(0, transfer.to_value())
        })
        .await;
    }

    /// The outcome the endpoint sends for delivery `id`.
    pub async fn outcome(&mut self, id: u32) -> DeliveryState {
        loop {
            let frame = self.until(code::DISPOSITION).await;
            let disposition = Disposition::from_value(frame.body.as_ref().unwrap()).unwrap();
            if disposition.first <= id && id <= disposition.last.unwrap_or(disposition.first) {
                return disposition.state.expect("an outcome");
            }
        }
    }

    /// Attach a receiver of partition 0 on `handle`: `None` when it is attached, the error of
    /// the detach that follows its attach when it is refused. A `$management` link attached
    /// on handle 250 after it tells when the endpoint has answered (it handles frames in order).
    pub async fn receive(&mut self, channel: u16, handle: u32) -> Option<AmqpError> {
        self.attached(channel, handle, Role::Receiver, PARTITION)
            .await
    }

    /// Attach a link on `handle`: `None` when it is attached, the error of the detach that
    /// follows its attach when it is refused (see [`Client::receive`]).
    pub async fn attached(
        &mut self,
        channel: u16,
        handle: u32,
        role: Role,
        address: &str,
    ) -> Option<AmqpError> {
        self.attach(channel, handle, role, address).await;
        self.attach(channel, 250, Role::Sender, "$management").await;
        let mut refused = None;
        loop {
            let frame = self.next().await.expect("the connection is open");
            let body = frame.body.unwrap();
            match body.descriptor_code() {
                Some(code::ATTACH) if Attach::from_value(&body).unwrap().handle == 250 => {
                    return refused;
                }
                Some(code::DETACH) => {
                    let detach = Detach::from_value(&body).unwrap();
                    if detach.handle == handle {
                        refused = detach.error;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
