//! Phoenix channel frames as `@supabase/realtime-js` sends and expects them.
//!
//! - `vsn=1.0.0`: every frame is a JSON object `{topic, event, payload, ref, join_ref}`.
//! - `vsn=2.0.0` (the client's default since 2.x): text frames are JSON arrays
//!   `[join_ref, ref, topic, event, payload]`, and the client sends a user broadcast as a
//!   binary "user broadcast push" (kind 3). Server frames stay JSON text: the client
//!   decodes every text frame as an array, broadcasts included.

use serde_json::{Map, Value, json};

/// One channel message, either direction. `join_ref` and `ref` are kept as the client
/// sent them (strings, or `null`) and echoed back verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Value,
    pub reference: Value,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// The serializer version a socket asked for in its `vsn` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    V1,
    V2,
}

impl Vsn {
    /// `1.0.0` (also when absent, as Phoenix assumes) or `2.0.0`.
    pub fn parse(vsn: Option<&str>) -> Option<Self> {
        match vsn {
            None | Some("1.0.0") => Some(Self::V1),
            Some("2.0.0") => Some(Self::V2),
            Some(_) => None,
        }
    }
}

/// Why a client frame was not understood.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("frame has the wrong shape: {0}")]
    Shape(&'static str),
}

/// The kind byte of a binary user broadcast push (client to server).
const USER_BROADCAST_PUSH: u8 = 3;
/// Payload encodings of a binary user broadcast push.
const JSON_ENCODING: u8 = 1;

impl Frame {
    /// A frame the server pushes on `topic` (no `ref`: it answers nothing).
    pub fn push(topic: &str, join_ref: Value, event: &str, payload: Value) -> Self {
        Self {
            join_ref,
            reference: Value::Null,
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        }
    }

    /// The `phx_reply` to this frame.
    pub fn reply(&self, status: &str, response: Value) -> Self {
        Self {
            join_ref: self.join_ref.clone(),
            reference: self.reference.clone(),
            topic: self.topic.clone(),
            event: "phx_reply".into(),
            payload: json!({"status": status, "response": response}),
        }
    }

    /// Parses a text frame.
    pub fn decode_text(vsn: Vsn, text: &str) -> Result<Self, ProtocolError> {
        let value: Value = serde_json::from_str(text)?;
        match (vsn, value) {
            (Vsn::V1, Value::Object(mut map)) => Ok(Self {
                join_ref: map.remove("join_ref").unwrap_or(Value::Null),
                reference: map.remove("ref").unwrap_or(Value::Null),
                topic: take_string(&mut map, "topic")?,
                event: take_string(&mut map, "event")?,
                payload: map.remove("payload").unwrap_or(Value::Null),
            }),
            (Vsn::V2, Value::Array(items)) => {
                let [join_ref, reference, topic, event, payload]: [Value; 5] = items
                    .try_into()
                    .map_err(|_| ProtocolError::Shape("expected 5 elements"))?;
                let (Value::String(topic), Value::String(event)) = (topic, event) else {
                    return Err(ProtocolError::Shape("topic and event must be strings"));
                };
                Ok(Self {
                    join_ref,
                    reference,
                    topic,
                    event,
                    payload,
                })
            }
            (Vsn::V1, _) => Err(ProtocolError::Shape("expected an object")),
            (Vsn::V2, _) => Err(ProtocolError::Shape("expected an array")),
        }
    }

    /// Parses a binary frame: only the 2.0.0 user broadcast push with a JSON payload.
    pub fn decode_binary(bytes: &[u8]) -> Result<Self, ProtocolError> {
        const HEADER: usize = 7;
        if bytes.len() < HEADER || bytes[0] != USER_BROADCAST_PUSH {
            return Err(ProtocolError::Shape("unknown binary frame kind"));
        }
        let lengths = [bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]].map(usize::from);
        let encoding = bytes[6];
        let mut offset = HEADER;
        let mut fields = Vec::with_capacity(5);
        for length in lengths {
            let field = bytes
                .get(offset..offset + length)
                .ok_or(ProtocolError::Shape("binary frame is truncated"))?;
            fields.push(
                std::str::from_utf8(field)
                    .map_err(|_| ProtocolError::Shape("binary header is not UTF-8"))?,
            );
            offset += length;
        }
        if encoding != JSON_ENCODING {
            return Err(ProtocolError::Shape(
                "only JSON broadcast payloads are accepted",
            ));
        }
        let user_payload: Value = serde_json::from_slice(&bytes[offset..])?;
        let mut payload = json!({"type": "broadcast", "event": fields[3], "payload": user_payload});
        if !fields[4].is_empty()
            && let (Value::Object(meta), Some(target)) =
                (serde_json::from_str(fields[4])?, payload.as_object_mut())
        {
            target.extend(meta);
        }
        let text_or_null = |s: &str| {
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s.to_owned())
            }
        };
        Ok(Self {
            join_ref: text_or_null(fields[0]),
            reference: text_or_null(fields[1]),
            topic: fields[2].to_owned(),
            event: "broadcast".into(),
            payload,
        })
    }

    /// The text frame for a client speaking `vsn`.
    pub fn encode(&self, vsn: Vsn) -> String {
        self.encode_for(vsn, &self.join_ref)
    }

    /// The text frame with another `join_ref`: a room shares one frame among its
    /// members, each of which joined with its own ref.
    pub fn encode_for(&self, vsn: Vsn, join_ref: &Value) -> String {
        let value = match vsn {
            Vsn::V1 => json!({
                "topic": self.topic,
                "event": self.event,
                "payload": self.payload,
                "ref": self.reference,
                "join_ref": join_ref,
            }),
            Vsn::V2 => json!([
                join_ref,
                self.reference,
                self.topic,
                self.event,
                self.payload
            ]),
        };
        value.to_string()
    }
}

fn take_string(map: &mut Map<String, Value>, key: &'static str) -> Result<String, ProtocolError> {
    match map.remove(key) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(ProtocolError::Shape("topic and event must be strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_text_frames_round_trip() {
        let v1 =
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"3","join_ref":null}"#;
        let frame = Frame::decode_text(Vsn::V1, v1).expect("v1");
        assert_eq!(frame.event, "heartbeat");
        assert_eq!(frame.reference, json!("3"));
        let v2 = r#"["1","1","realtime:room","phx_join",{"config":{}}]"#;
        let frame = Frame::decode_text(Vsn::V2, v2).expect("v2");
        assert_eq!(frame.topic, "realtime:room");
        let reply = frame.reply("ok", json!({}));
        assert_eq!(
            reply.encode(Vsn::V2),
            r#"["1","1","realtime:room","phx_reply",{"status":"ok","response":{}}]"#
        );
        assert!(Frame::decode_text(Vsn::V2, v1).is_err());
    }

    #[test]
    fn binary_user_broadcast_push_decodes() {
        // What the client's Serializer._encodeUserBroadcastPush writes.
        let (join_ref, reference, topic, event) = ("1", "2", "realtime:room", "hi");
        let mut bytes = vec![
            USER_BROADCAST_PUSH,
            join_ref.len() as u8,
            reference.len() as u8,
            topic.len() as u8,
            event.len() as u8,
            0,
            JSON_ENCODING,
        ];
        for part in [join_ref, reference, topic, event] {
            bytes.extend_from_slice(part.as_bytes());
        }
        bytes.extend_from_slice(br#"{"x":1}"#);
        let frame = Frame::decode_binary(&bytes).expect("decodes");
        assert_eq!(frame.topic, topic);
        assert_eq!(frame.event, "broadcast");
        assert_eq!(frame.reference, json!("2"));
        assert_eq!(
            frame.payload,
            json!({"type": "broadcast", "event": "hi", "payload": {"x": 1}})
        );
        assert!(Frame::decode_binary(&bytes[..9]).is_err());
    }
}
