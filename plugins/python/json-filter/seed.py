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


_QUOTED_KEYS = tuple(f'"{k}"'.encode() for k in _STRINGS + _INTEGERS)
# The number token after a key, read at the key's only occurrence.
_NUMBER_AFTER_KEY = re.compile(rb'"[a-z_]+"[ \t\r\n]*:[ \t\r\n]*(-?[0-9][0-9.eE+-]*)')


def seed_value(body: bytes) -> int:
    """The event's `value`, or ValueError saying why the body is not a seed event."""
    text = body.decode("utf-8")
    if _too_deep(text):
        raise ValueError("recursion limit exceeded")
    if body.lstrip(b" \t\r\n")[:1] != b"{":
        raise ValueError("not a JSON object")
    # Escapes can spell a key (`"val\u0075e"`) or a lone surrogate; a key may repeat: those
    # bodies take the slow path, which sees every key/value pair as written.
    escapes = b"\\u" in body
    if escapes or any(body.count(k) > 1 for k in _QUOTED_KEYS):
        fields = {}
        pairs = json.loads(
            text,
            object_pairs_hook=list,  # keep duplicates visible; nested objects are not looked at
            parse_constant=_no_constants,
            parse_int=_integer,
        )
        for key, value in pairs:
            if key in fields and key in _STRINGS + _INTEGERS:
                raise ValueError(f"duplicate field `{key}`")
            fields[key] = value
    else:
        fields = json.loads(text, parse_constant=_no_constants)
        for key in _INTEGERS:
            # `-0` parses as 0: look at the token (the key occurs once).
            if fields.get(key) == 0 and type(fields[key]) is int:
                at = body.find(f'"{key}"'.encode())
                token = _NUMBER_AFTER_KEY.match(body, at)
                if token is None or token.group(1) == b"-0":
                    raise ValueError(f"`{key}` is not a 64-bit integer")
    for key in _STRINGS:
        if key not in fields:
            raise ValueError(f"missing field `{key}`")
        if not isinstance(fields[key], str):
            raise ValueError(f"`{key}` is not a string")
        if escapes:
            fields[key].encode("utf-8")  # a lone surrogate escape is not text
    for key in _INTEGERS:
        if key not in fields:
            raise ValueError(f"missing field `{key}`")
        v = fields[key]
        if type(v) is not int or not _I64[0] <= v <= _I64[1]:
            raise ValueError(f"`{key}` is not a 64-bit integer")
    result: int = fields["value"]
    return result
