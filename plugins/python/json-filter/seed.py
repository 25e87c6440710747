"""What a seed event is: the json-filter's parsing, shared by the plugin (app.py) and the
native baseline of the languages benchmark (host/benches/native/filter.py). No imports from the
host: plain Python.

A seed event is a UTF-8 JSON object with string `event_id`, `timestamp` and `data` and integer
`message_id` and `value` (no fraction or exponent, within 64 bits); other fields are ignored;
one of those five given twice, or nesting deeper than 127 levels, is not.
"""

import json
import re
from typing import NoReturn, Union

_STRINGS = ("event_id", "timestamp", "data")
_INTEGERS = ("message_id", "value")
_I64 = (-(2**63), 2**63 - 1)
_MAX_DEPTH = 127


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _too_deep(text: str) -> bool:
    """Arrays and objects nested deeper than 127 levels (strings aside)."""
    if text.count("[") + text.count("{") <= _MAX_DEPTH:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _integer(token: str) -> Union[int, float]:
    # serde_json reads `-0` as a float (-0.0), so it is not an integer here either.
    return -0.0 if token == "-0" else int(token)


# Decoders made once: `json.loads` with keyword arguments builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_no_constants)
# Keeps duplicates visible (nested objects are not looked at) and sees each integer's token.
_PAIRS_DECODER = json.JSONDecoder(
    object_pairs_hook=list, parse_constant=_no_constants, parse_int=_integer
)
# The number token after a key, read at the key's only occurrence.
_NUMBER_AFTER_KEY = re.compile(rb'"[a-z_]+"[ \t\r\n]*:[ \t\r\n]*(-?[0-9][0-9.eE+-]*)')


def _repeated_key(body: bytes) -> bool:
    # Unrolled: a loop over the keys costs more than the searches.
    return (
        body.count(b'"event_id"') > 1
        or body.count(b'"message_id"') > 1
        or body.count(b'"timestamp"') > 1
        or body.count(b'"value"') > 1
        or body.count(b'"data"') > 1
    )


def _missing_or_not(fields: dict, key: str, what: str) -> NoReturn:
    if key not in fields:
        raise ValueError(f"missing field `{key}`")
    raise ValueError(f"`{key}` is not {what}")


def seed_value(body: bytes) -> int:
    """The event's `value`, or ValueError saying why the body is not a seed event."""
    text = body.decode("utf-8")
    if text.count("[") + text.count("{") > _MAX_DEPTH and _too_deep(text):
        raise ValueError("recursion limit exceeded")
    if body.lstrip(b" \t\r\n")[:1] != b"{":
        raise ValueError("not a JSON object")
    # Escapes can spell a key (`"val\u0075e"`) or a lone surrogate; a key may repeat: those
    # bodies take the slow path, which sees every key/value pair as written.
    escapes = b"\\u" in body
    if escapes or _repeated_key(body):
        fields = {}
        for key, value in _PAIRS_DECODER.decode(text):
            if key in fields and key in _STRINGS + _INTEGERS:
                raise ValueError(f"duplicate field `{key}`")
            fields[key] = value
    else:
        fields = _DECODER.decode(text)
        # `-0` parses as 0: look at the token (the key occurs once).
        for key in _INTEGERS:
            if fields.get(key) == 0 and type(fields[key]) is int:
                at = body.find(f'"{key}"'.encode())
                token = _NUMBER_AFTER_KEY.match(body, at)
                if token is None or token.group(1) == b"-0":
                    raise ValueError(f"`{key}` is not a 64-bit integer")
    # Unrolled checks, in the order of the Rust filter's messages.
    get = fields.get
    event_id, timestamp, data = get("event_id"), get("timestamp"), get("data")
    if type(event_id) is not str:
        _missing_or_not(fields, "event_id", "a string")
    if type(timestamp) is not str:
        _missing_or_not(fields, "timestamp", "a string")
    if type(data) is not str:
        _missing_or_not(fields, "data", "a string")
    if escapes:
        # A lone surrogate escape is not text.
        event_id.encode("utf-8")
        timestamp.encode("utf-8")
        data.encode("utf-8")
    message_id, value = get("message_id"), get("value")
    if type(message_id) is not int or not _I64[0] <= message_id <= _I64[1]:
        _missing_or_not(fields, "message_id", "a 64-bit integer")
    if type(value) is not int or not _I64[0] <= value <= _I64[1]:
        _missing_or_not(fields, "value", "a 64-bit integer")
    return value
