//! count-by-key: counts events per value of a top-level JSON field, in the partition's keyed
//! state. For every event whose body is a JSON object with the field `field` holding a string or
//! a number, adds 1 to the state key `count/<value>` (a u64 stored as 8 little-endian bytes;
//! a string's unescaped text, a number's text as written, e.g. `count/sensor-7`, `count/42`).
//! Events without the field, with another kind of value, or whose body is not a JSON object
//! are handled without counting. State is exactly once with the checkpoint, so the counts
//! survive restarts and takeovers without double counting; the event hub needs an
//! `[eventhub.state]` store.
//!
//! Config: `field` (required: the top-level field to count by, e.g. `device`).

use hubwasm_guest::{export_plugin, state, Config, Event, EventError, PartitionContext, Plugin};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Prefix of every state key this plugin writes.
const PREFIX: &str = "count/";

struct CountByKey {
    field: String,
    /// `count/<value>`, reused across events to save an allocation each.
    key: String,
}

impl Plugin for CountByKey {
    fn init(config: Config) -> Result<Self, String> {
        match config.get("field") {
            Some(field) if !field.is_empty() => Ok(Self {
                field: field.to_owned(),
                key: String::from(PREFIX),
            }),
            _ => Err(
                "config `field` is required: set it to the top-level JSON field whose \
                      values to count, e.g. `device`"
                    .into(),
            ),
        }
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let Some(value) = field_text(event.body(), &self.field) else {
            return Ok(());
        };
        self.key.truncate(PREFIX.len());
        self.key.push_str(&value);
        // A key over the host's limit is this event's fault: `?` makes it `rejected`.
        state::add_u64(&self.key, 1)?;
        Ok(())
    }
}

/// The text of the top-level `field` of a JSON object `body`, if it holds a string or a number.
/// Streams through the body once without building a tree: other fields are skipped, and only a
/// string with escapes allocates. The first occurrence of a repeated field counts.
fn field_text<'a>(body: &'a [u8], field: &str) -> Option<Cow<'a, str>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw = Find(field).deserialize(&mut de).ok()??;
    de.end().ok()?; // trailing bytes: not JSON, so not counted
    match raw.get().as_bytes().first()? {
        b'"' => serde_json::from_str::<Text>(raw.get()).ok().map(|t| t.0),
        b'-' | b'0'..=b'9' => Some(Cow::Borrowed(raw.get())),
        _ => None, // true, false, null, an object or an array
    }
}

/// Finds one field of a JSON object, keeping its value unparsed.
struct Find<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Text>()? {
            if found.is_none() && key.0 == self.0 {
                found = Some(map.next_value::<&RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A JSON string, borrowed from the body unless it holds escapes (serde's own `Cow<str>`
/// always copies).
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        de.deserialize_str(V)
    }
}

export_plugin!(CountByKey);
