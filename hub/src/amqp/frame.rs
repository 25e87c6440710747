//! AMQP 1.0 framing (part 2.3): protocol headers and frames.

use super::codec::{CodecError, Value};

/// `AMQP` + protocol id 0 (AMQP) + version 1.0.0.
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
/// `AMQP` + protocol id 3 (SASL) + version 1.0.0.
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";

/// Smallest max-frame-size a peer may announce (part 2.7.1).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

/// Frame type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Amqp = 0,
    Sasl = 1,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: FrameType,
    pub channel: u16,
    /// The performative; `None` for an empty (heartbeat) frame.
    pub body: Option<Value>,
    /// Bytes after the performative (a transfer's message payload).
    pub payload: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is smaller than the 8-byte frame header")]
    TooSmall { size: u32 },
    #[error("frame of {size} bytes is larger than the agreed max-frame-size {max}")]
    TooLarge { size: u32, max: u32 },
    #[error("frame data offset {doff} is invalid (must be at least 2 words and within the frame)")]
    BadDataOffset { doff: u8 },
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("frame body is not a valid AMQP value: {0}")]
    Body(#[from] CodecError),
}

impl Frame {
    /// An AMQP frame carrying `body` on `channel`.
    pub fn amqp(channel: u16, body: Value) -> Self {
        Self {
            kind: FrameType::Amqp,
            channel,
            body: Some(body),
            payload: Vec::new(),
        }
    }

    /// A SASL frame (always channel 0).
    pub fn sasl(body: Value) -> Self {
        Self {
            kind: FrameType::Sasl,
            channel: 0,
            body: Some(body),
            payload: Vec::new(),
        }
    }

    /// The empty frame, used as a heartbeat.
    pub fn heartbeat() -> Self {
        Self {
            kind: FrameType::Amqp,
            channel: 0,
            body: None,
            payload: Vec::new(),
        }
    }

    /// Encode to wire bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0, 2, self.kind as u8]);
        out.extend_from_slice(&self.channel.to_be_bytes());
        if let Some(body) = &self.body {
            body.encode(out);
        }
        out.extend_from_slice(&self.payload);
        let size = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    /// Decode a complete frame (`bytes` holds exactly one frame, header included).
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() < 8 {
            return Err(FrameError::TooSmall {
                size: bytes.len() as u32,
            });
        }
        let doff = bytes[4];
        let kind = match bytes[5] {
            0 => FrameType::Amqp,
            1 => FrameType::Sasl,
            other => return Err(FrameError::UnknownType(other)),
        };
        let channel = u16::from_be_bytes([bytes[6], bytes[7]]);
        let body_start = doff as usize * 4;
        if doff < 2 || body_start > bytes.len() {
            return Err(FrameError::BadDataOffset { doff });
        }
        let rest = &bytes[body_start..];
        if rest.is_empty() {
            return Ok(Frame {
                kind,
                channel,
                body: None,
                payload: Vec::new(),
            });
        }
        let (body, used) = Value::decode(rest)?;
        Ok(Frame {
            kind,
            channel,
            body: Some(body),
            payload: rest[used..].to_vec(),
        })
    }

    /// Size of the next frame in `buf` if its 4-byte size is there, validated against `max`.
    pub fn peek_size(buf: &[u8], max: u32) -> Result<Option<usize>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if size < 8 {
            return Err(FrameError::TooSmall { size });
        }
        if size > max {
            return Err(FrameError::TooLarge { size, max });
        }
        Ok(Some(size as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_payload_and_channel() {
        let frame = Frame {
            kind: FrameType::Amqp,
            channel: 7,
            body: Some(Value::described(0x14, vec![Value::Uint(1)])),
            payload: b"message bytes".to_vec(),
        };
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        assert_eq!(
            Frame::peek_size(&bytes, 1 << 20).unwrap(),
            Some(bytes.len())
        );
        assert_eq!(Frame::decode(&bytes).unwrap(), frame);

        let mut hb = Vec::new();
        Frame::heartbeat().encode(&mut hb);
        assert_eq!(hb, [0, 0, 0, 8, 2, 0, 0, 0]);
        assert_eq!(Frame::decode(&hb).unwrap().body, None);
    }

    #[test]
    fn bad_frames_are_refused_with_the_reason() {
        assert!(matches!(
            Frame::peek_size(&[0, 0, 0, 4], 1024),
            Err(FrameError::TooSmall { size: 4 })
        ));
        assert!(matches!(
            Frame::peek_size(&[0, 0, 8, 0], 1024),
            Err(FrameError::TooLarge {
                size: 2048,
                max: 1024
            })
        ));
        assert_eq!(Frame::peek_size(&[0, 0], 1024).unwrap(), None);
        assert!(matches!(
            Frame::decode(&[0, 0, 0, 8, 1, 0, 0, 0]),
            Err(FrameError::BadDataOffset { doff: 1 })
        ));
        assert!(matches!(
            Frame::decode(&[0, 0, 0, 8, 2, 9, 0, 0]),
            Err(FrameError::UnknownType(9))
        ));
        assert!(matches!(
            Frame::decode(&[0, 0, 0, 10, 2, 0, 0, 0, 0x70, 0]),
            Err(FrameError::Body(_))
        ));
    }
}
