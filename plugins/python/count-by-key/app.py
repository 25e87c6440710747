"""count-by-key in Python: the same semantics and config as the Rust count-by-key.

Counts events per value of a top-level JSON field, in the partition's keyed state. For every
event whose body is a JSON object with the field `field` holding a string or a number, adds 1 to
the state key `count/<value>` (a u64 stored as 8 little-endian bytes; a string's unescaped text,
a number's text as written, e.g. `count/sensor-7`, `count/42`, `count/1.50`). Events without the
field, with another kind of value, or whose body is not a JSON object are handled without
counting. The first occurrence of a repeated field counts. State is exactly once with the
checkpoint, so the counts survive restarts and takeovers without double counting; the event hub
needs an `[eventhub.state]` store.

Config: `field` (required: the top-level field to count by, e.g. `device`).
"""

import json
from typing import Any, List, Optional, Tuple

import hubwasm

# Prefix of every state key this plugin writes.
PREFIX = "count/"
# serde_json's nesting limit, which the Rust plugin's parser applies.
MAX_DEPTH = 127


class Number(str):
    """A JSON number, kept as the text it was written as."""


class Members(List[Tuple[str, Any]]):
    """A JSON object's members in order, repeats included (json.loads keeps only the last)."""


def no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


DECODER = json.JSONDecoder(
    object_pairs_hook=Members,
    parse_int=Number,
    parse_float=Number,
    parse_constant=no_constants,
)


def too_deep(text: str) -> bool:
    """Arrays and objects nested deeper than 127 levels (strings aside)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
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
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def well_formed(text: str) -> bool:
    """No lone surrogate (`"\\ud800"` is valid JSON to Python, not to serde_json or UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def field_text(body: bytes, field: str) -> Optional[str]:
    """The text of the top-level `field` of a JSON object `body`, if it holds a string or a
    number."""
    try:
        text = body.decode("utf-8")
        doc = DECODER.decode(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    if not isinstance(doc, Members) or too_deep(text):
        return None
    escapes = "\\u" in text  # only escapes can make a lone surrogate
    if escapes and not all(well_formed(key) for key, _ in doc):
        return None  # the Rust parser refuses such a key, so the whole body
    for key, value in doc:
        if key == field:
            if isinstance(value, Number):
                return str(value)
            if isinstance(value, str) and (not escapes or well_formed(value)):
                return value
            return None  # true, false, null, an object or an array
    return None


@hubwasm.plugin
class CountByKey:
    def __init__(self, config: hubwasm.Config):
        field = config.get("field")
        if not field:
            raise hubwasm.ConfigError(
                "config `field` is required: set it to the top-level JSON field whose values to "
                "count, e.g. `device`"
            )
        self.field = field

    def handle(self, ctx: hubwasm.Context, event: hubwasm.Event) -> None:
        value = field_text(event.body, self.field)
        if value is None:
            return
        # A key over the host's limit is this event's fault: StateTooLarge is a Reject.
        hubwasm.state.add_u64(PREFIX + value)
