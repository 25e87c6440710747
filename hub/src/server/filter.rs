//! Where a receiver starts: the `apache.org:selector-filter:string` filter of its source.

use crate::amqp::Value;

/// The filter name, also used as its descriptor symbol.
pub const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
/// The same descriptor as a numeric code (0x0000468C:0x00000004).
pub const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

/// A receiver's start position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The first retained event (`offset > '-1'`).
    Earliest,
    /// Only events enqueued after the link attached (`offset > '@latest'`).
    Latest,
    /// Events after (or at, if inclusive) this offset.
    Offset { offset: i64, inclusive: bool },
    /// Events after (or at, if inclusive) this sequence number.
    Sequence { sequence: i64, inclusive: bool },
    /// Events enqueued after this time (ms since the epoch).
    EnqueuedAfter { time_ms: i64, inclusive: bool },
}

/// Parse one selector expression, e.g. `amqp.annotation.x-opt-offset > '-1'`. Whitespace around
/// the operator is optional (the Rust SDK writes `>='2'`).
pub fn parse_selector(expr: &str) -> Result<StartPosition, String> {
    let bad = || format!("unsupported filter expression `{expr}`");
    let expr_trimmed = expr.trim();
    let op_at = expr_trimmed.find(['>', '<', '=']).ok_or_else(bad)?;
    let field = expr_trimmed[..op_at].trim();
    let rest = &expr_trimmed[op_at..];
    let (inclusive, value) = if let Some(v) = rest.strip_prefix(">=") {
        (true, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (false, v)
    } else {
        return Err(bad());
    };
    let value = value
        .trim()
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(bad)?;
    let number = || {
        value.parse::<i64>().map_err(|e| match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => format!(
                "`{value}` in filter expression `{expr}` is out of range: use a 64-bit integer \
                 ({} to {})",
                i64::MIN,
                i64::MAX
            ),
            _ => format!(
                "`{value}` in filter expression `{expr}` is not a number: use a 64-bit integer \
                 in quotes"
            ),
        })
    };
    match field.to_ascii_lowercase().as_str() {
        "amqp.annotation.x-opt-offset" => match value {
            "-1" => Ok(StartPosition::Earliest),
            "@latest" => Ok(StartPosition::Latest),
            _ => Ok(StartPosition::Offset {
                offset: number()?,
                inclusive,
            }),
        },
        "amqp.annotation.x-opt-sequence-number" => Ok(StartPosition::Sequence {
            sequence: number()?,
            inclusive,
        }),
        "amqp.annotation.x-opt-enqueued-time" => Ok(StartPosition::EnqueuedAfter {
            time_ms: number()?,
            inclusive,
        }),
        _ => Err(bad()),
    }
}

/// The start position from a source's filter set; no selector means the start of the stream.
pub fn from_filter_set(filters: &[(Value, Value)]) -> Result<StartPosition, String> {
    for (_, filter) in filters {
        if let Value::Described(descriptor, value) = filter {
            let is_selector = descriptor.as_str() == Some(SELECTOR_FILTER)
                || descriptor.as_u64() == Some(SELECTOR_FILTER_CODE);
            if is_selector {
                let expr = value
                    .as_str()
                    .ok_or("the selector filter's value is not a string")?;
                return parse_selector(expr);
            }
        }
    }
    Ok(StartPosition::Earliest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_start_position_parses() {
        use StartPosition::*;
        for (expr, want) in [
            ("amqp.annotation.x-opt-offset > '-1'", Earliest),
            ("amqp.annotation.x-opt-offset > '@latest'", Latest),
            (
                "amqp.annotation.x-opt-offset >= '4096'",
                Offset {
                    offset: 4096,
                    inclusive: true,
                },
            ),
            (
                "amqp.annotation.x-opt-sequence-number >='7'",
                Sequence {
                    sequence: 7,
                    inclusive: true,
                },
            ),
            (
                "amqp.annotation.x-opt-sequence-number > '41'",
                Sequence {
                    sequence: 41,
                    inclusive: false,
                },
            ),
            (
                "amqp.annotation.x-opt-enqueued-time > '1764000000000'",
                EnqueuedAfter {
                    time_ms: 1_764_000_000_000,
                    inclusive: false,
                },
            ),
        ] {
            assert_eq!(parse_selector(expr), Ok(want), "{expr}");
        }
        for bad in [
            "",
            "amqp.annotation.x-opt-offset = '1'",
            "amqp.annotation.x-opt-offset > 1",
            "amqp.annotation.x-opt-sequence-number > 'abc'",
            "amqp.annotation.x-opt-unknown > '1'",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn out_of_range_numbers_are_refused_with_a_clear_error() {
        for value in [
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
        ] {
            for field in [
                "amqp.annotation.x-opt-sequence-number",
                "amqp.annotation.x-opt-offset",
                "amqp.annotation.x-opt-enqueued-time",
            ] {
                let expr = format!("{field} > '{value}'");
                let err = parse_selector(&expr).unwrap_err();
                assert!(
                    err.contains(value) && err.contains("64-bit"),
                    "{expr}: {err}"
                );
            }
        }
        let err = parse_selector("amqp.annotation.x-opt-offset > '12ab'").unwrap_err();
        assert!(
            err.contains("`12ab`") && err.contains("not a number"),
            "{err}"
        );
        // The extremes themselves parse.
        assert_eq!(
            parse_selector("amqp.annotation.x-opt-sequence-number > '9223372036854775807'"),
            Ok(StartPosition::Sequence {
                sequence: i64::MAX,
                inclusive: false
            })
        );
    }

    #[test]
    fn the_descriptor_may_be_a_symbol_or_a_code() {
        let expr = Value::string("amqp.annotation.x-opt-sequence-number >= '3'");
        let by_symbol = vec![(
            Value::symbol(SELECTOR_FILTER),
            Value::Described(
                Box::new(Value::symbol(SELECTOR_FILTER)),
                Box::new(expr.clone()),
            ),
        )];
        let by_code = vec![(
            Value::symbol(SELECTOR_FILTER),
            Value::Described(Box::new(Value::Ulong(SELECTOR_FILTER_CODE)), Box::new(expr)),
        )];
        let want = StartPosition::Sequence {
            sequence: 3,
            inclusive: true,
        };
        assert_eq!(from_filter_set(&by_symbol), Ok(want));
        assert_eq!(from_filter_set(&by_code), Ok(want));
        assert_eq!(from_filter_set(&[]), Ok(StartPosition::Earliest));
    }
}
