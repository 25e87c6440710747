"""Write hubwasm plugins in Python.

A plugin is a class with a ``handle(self, ctx, event)`` method; decorate it with
:func:`plugin`. The host calls it once per event of each batch it reads from an Event Hubs
partition, and moves the partition's checkpoint only past events that returned normally::

    import hubwasm

    @hubwasm.plugin
    class NonEmpty:
        def __init__(self, config: hubwasm.Config):
            self.limit = config.int("limit", 100)

        def handle(self, ctx: hubwasm.Context, event: hubwasm.Event) -> None:
            if not event.body:
                raise hubwasm.Reject("empty body")

Verdicts are what Python does anyway: return for success, ``raise Retry(...)`` for a transient
failure (the host retries with backoff), ``raise Reject(...)`` for a poison event (dead-lettered
or halted, as the operator configured). Any other exception is a bug: its traceback goes to the
host's log and the call traps, which the host treats like a crash (a fresh instance, retries,
then the failure policy).

Events are views over the batch the host copied in as a few columns: a field is decoded only
when you read it. Build with ``hubwasm plugin build`` (componentize-py, world
batch-plugin-http: the contract plus ``wasi:http``).

Effects (contract 0.2; each works only where the operator configured it for the event hub)::

    hubwasm.emit("alerts", event, event.body, partition_key=event.partition_key)
    hubwasm.state.add_u64("count/all")          # exactly once with the checkpoint
    if hubwasm.first_seen(f"order/{order_id}", ttl_seconds=86_400):
        ...

``emit`` sends an event to an output (``[[eventhub.output]]``) on behalf of an event of the
call, at least once: the checkpoint waits for the output. ``state`` is the partition's keyed
state (``[eventhub.state]``), committed with the checkpoint. ``first_seen`` asks the consumer
group's dedupe store (``[eventhub.dedupe]``). Their errors are verdicts, so a handler just calls
them: an emitted event or a state key/value too large raises :class:`EmitError` /
:class:`StateTooLarge` (both :class:`Reject`), a full state :class:`StateFull` (a
:class:`Retry`).

Outbound HTTP goes through ``wasi:http``, to the origins the operator allows
(``allowed_outbound_hosts``)::

    response = hubwasm.http.post("https://enrich.example.com/v1", event.body)
    if response.status != 200:
        raise hubwasm.Retry(f"enrich answered {response.status}")

A request blocks the handler until the answer (the host waits, not a busy loop); a refused
origin, a connection failure or the call timeout raise :class:`HttpError` (a :class:`Retry`).
"""

from __future__ import annotations

import builtins
import json as _json
import math as _math
import sys as _sys
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NoReturn,
    Optional,
    Protocol,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from componentize_py_types import Err
from wit_world import exports as _exports
from wit_world.imports import log as _log
from wit_world.imports import types as _types

# The effect imports of contract 0.2. Imported here (at build time, where componentize-py
# snapshots the module) rather than on first use; bindings generated from a contract without
# them leave the rest of the library working, and only the effect helpers say what is missing.
try:
    from wit_world.imports import dedupe as _wit_dedupe
    from wit_world.imports import emit as _wit_emit
    from wit_world.imports import state as _wit_state

    _EFFECTS = True
except ImportError:  # pragma: no cover - a contract from before the effects
    _EFFECTS = False

# Outbound HTTP: wasi:http, in the world `plugin build` uses for Python (batch-plugin-http).
try:
    from wit_world.imports import http_types as _http_types
    from wit_world.imports import outgoing_handler as _wit_http
    from wit_world.imports.streams import StreamError_Closed as _StreamClosed

    _HTTP = True
except ImportError:  # pragma: no cover - built for the world without wasi:http
    _HTTP = False

__all__ = [
    "plugin",
    "Config",
    "ConfigError",
    "Context",
    "Event",
    "Batch",
    "Retry",
    "Reject",
    "CloseReason",
    "log",
    "emit",
    "state",
    "first_seen",
    "EmitError",
    "StateTooLarge",
    "StateFull",
    "http",
    "HttpError",
    "Response",
]

#: The partition the events come from: ``namespace``, ``event_hub``, ``consumer_group``,
#: ``partition_id`` (strings).
Context = _types.PartitionContext

#: Why a partition is closed: ``CloseReason.OWNERSHIP_LOST`` or ``CloseReason.SHUTDOWN``.
CloseReason = _types.CloseReason

_ABSENT = 0xFFFFFFFF
_FIELDS = 7  # spans per event: body, offset, key, content type, correlation id, message id, props
_BODY, _OFFSET, _KEY, _CONTENT_TYPE, _CORRELATION_ID, _MESSAGE_ID, _PROPERTIES = range(7)


class Retry(Exception):
    """A transient failure: the host retries the event later (not before ``after_ms``)."""

    def __init__(self, message: str, after_ms: Optional[int] = None):
        super().__init__(message)
        self.message = str(message)
        self.after_ms = after_ms


class Reject(Exception):
    """The event itself is bad (poison): retrying will not help."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = str(reason)


class ConfigError(ValueError):
    """A config value is missing or does not parse; the plugin refuses to start."""


_T = TypeVar("_T")


class Config:
    """The plugin's ``key = value`` settings from the host config (all strings).

    The typed getters return ``default`` when the key is absent and raise :class:`ConfigError`
    naming the key and the value when it does not parse. Raising from ``__init__`` refuses to
    start with that message.
    """

    def __init__(self, pairs: List[Tuple[str, str]]):
        self._values: Dict[str, str] = {}
        for key, value in pairs:  # the last one wins
            self._values[key] = value

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return self._values.get(key, default)

    def require(self, key: str) -> str:
        if key not in self._values:
            raise ConfigError(f"config `{key}` is required")
        return self._values[key]

    @overload
    def str(self, key: builtins.str) -> Optional[builtins.str]: ...
    @overload
    def str(self, key: builtins.str, default: builtins.str) -> builtins.str: ...
    def str(
        self, key: builtins.str, default: Optional[builtins.str] = None
    ) -> Optional[builtins.str]:
        return self._values.get(key, default)

    @overload
    def int(self, key: builtins.str) -> Optional[builtins.int]: ...
    @overload
    def int(self, key: builtins.str, default: builtins.int) -> builtins.int: ...
    def int(
        self, key: builtins.str, default: Optional[builtins.int] = None
    ) -> Optional[builtins.int]:
        return self._parse(key, default, _parse_int, "an integer")

    @overload
    def float(self, key: builtins.str) -> Optional[builtins.float]: ...
    @overload
    def float(self, key: builtins.str, default: builtins.float) -> builtins.float: ...
    def float(
        self, key: builtins.str, default: Optional[builtins.float] = None
    ) -> Optional[builtins.float]:
        return self._parse(key, default, builtins.float, "a number")

    @overload
    def bool(self, key: builtins.str) -> Optional[builtins.bool]: ...
    @overload
    def bool(self, key: builtins.str, default: builtins.bool) -> builtins.bool: ...
    def bool(
        self, key: builtins.str, default: Optional[builtins.bool] = None
    ) -> Optional[builtins.bool]:
        return self._parse(key, default, _parse_bool, "true or false")

    def items(self) -> List[Tuple[builtins.str, builtins.str]]:
        return list(self._values.items())

    def __contains__(self, key: builtins.str) -> builtins.bool:
        return key in self._values

    def _parse(
        self,
        key: builtins.str,
        default: Optional[_T],
        parse: Callable[[builtins.str], _T],
        what: builtins.str,
    ) -> Optional[_T]:
        raw = self._values.get(key)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, OverflowError):
            raise ConfigError(f"config `{key}` = `{raw}` is invalid: expected {what}") from None


def _parse_int(raw: str) -> int:
    # As Rust's i64 parsing: optional sign and ASCII digits only, within 64 bits.
    text = raw[1:] if raw[:1] in "+-" else raw
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(raw)
    value = int(raw)
    if not -(2**63) <= value < 2**63:
        raise ValueError(raw)
    return value


def _parse_bool(raw: str) -> bool:
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise ValueError(raw)


class Batch:
    """A batch of consecutive events of one partition; iterate it for :class:`Event` views."""

    __slots__ = ("_raw", "_spans", "_data", "_seqs", "__weakref__")

    def __init__(self, raw: _types.EventBatch):
        # Contract 0.2's columns are little-endian bytes (wasm is little-endian): typed views
        # over them cost nothing per event; a number becomes a Python int only when read.
        self._raw = raw
        self._spans = memoryview(raw.spans).cast("I")
        self._data = raw.data
        self._seqs = memoryview(raw.sequence_numbers).cast("q")

    def __len__(self) -> int:
        return len(self._seqs)

    def __getitem__(self, index: int) -> "Event":
        if not -len(self._seqs) <= index < len(self._seqs):
            raise IndexError("event index out of range")
        return Event(self, index % len(self._seqs))

    def __iter__(self) -> Iterator["Event"]:
        for i in range(len(self._seqs)):
            yield Event(self, i)

    def _bytes(self, index: int, field: int) -> Optional[bytes]:
        at = (index * _FIELDS + field) * 2
        start = self._spans[at]
        if start == _ABSENT:
            return None
        return self._data[start : start + self._spans[at + 1]]

    def _text(self, index: int, field: int) -> Optional[str]:
        raw = self._bytes(index, field)
        return None if raw is None else raw.decode("utf-8", "replace")


class Event:
    """One event of a batch. Each field is read from the batch when asked for."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: Batch, index: int):
        self._batch = batch
        self._index = index

    @property
    def body(self) -> bytes:
        """The body, unchanged."""
        return self._batch._bytes(self._index, _BODY) or b""

    def text(self) -> str:
        """The body as UTF-8 text (raises ``UnicodeDecodeError`` if it is not)."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return _json.loads(self.body)

    @property
    def sequence_number(self) -> int:
        return self._batch._seqs[self._index]

    @property
    def offset(self) -> str:
        return self._batch._text(self._index, _OFFSET) or ""

    @property
    def enqueued_time_ms(self) -> int:
        """When Event Hubs accepted the event, milliseconds since the Unix epoch (UTC)."""
        return memoryview(self._batch._raw.enqueued_times_ms).cast("q")[self._index]

    @property
    def partition_key(self) -> Optional[str]:
        return self._batch._text(self._index, _KEY)

    @property
    def content_type(self) -> Optional[str]:
        return self._batch._text(self._index, _CONTENT_TYPE)

    @property
    def correlation_id(self) -> Optional[str]:
        return self._batch._text(self._index, _CORRELATION_ID)

    @property
    def message_id(self) -> Optional[str]:
        return self._batch._text(self._index, _MESSAGE_ID)

    @property
    def properties(self) -> Dict[str, Any]:
        """Application properties: ``None``, ``bool``, ``int``, ``float``, ``str`` or ``bytes``
        (timestamps as int milliseconds, UUIDs as their text)."""
        b = self._batch
        at = (self._index * _FIELDS + _PROPERTIES) * 2
        start, length = b._spans[at], b._spans[at + 1]
        if start == _ABSENT:
            return {}
        data = b._data
        raw = memoryview(b._raw.properties)
        words, ints = raw.cast("I"), raw.cast("q")
        out: Dict[str, Any] = {}
        for entry in range(start, start + length):
            w = entry * _ENTRY_WORDS
            key = data[words[w] : words[w] + words[w + 1]].decode("utf-8", "replace")
            out[key] = _property_value(words[w + 2], entry, words, ints, raw, data)
        return out

    def property(self, name: str, default: Any = None) -> Any:
        return self.properties.get(name, default)

    def __repr__(self) -> str:
        return f"Event(sequence_number={self.sequence_number}, offset={self.offset!r})"


# A property entry is 24 bytes: name start, name length, kind, zero (32-bit words), value (64-bit).
_ENTRY_WORDS = 6
_NULL, _BOOLEAN, _INTEGER, _DOUBLE, _TEXT, _BINARY, _TIMESTAMP, _UUID = range(8)


def _property_value(
    kind: int, entry: int, words: memoryview, ints: memoryview, raw: memoryview, data: bytes
) -> Any:
    w = entry * _ENTRY_WORDS + 4  # the value word, as two 32-bit words
    if kind == _TEXT or kind == _UUID:
        return data[words[w] : words[w] + words[w + 1]].decode("utf-8", "replace")
    if kind == _BINARY:
        return data[words[w] : words[w] + words[w + 1]]
    if kind == _INTEGER or kind == _TIMESTAMP:
        return ints[entry * 3 + 2]
    if kind == _BOOLEAN:
        return ints[entry * 3 + 2] != 0
    if kind == _DOUBLE:
        return raw.cast("d")[entry * 3 + 2]
    return None


class log:
    """Logging into the host's log, tagged with the plugin's name: ``log.info("msg", key=v)``."""

    @staticmethod
    def write(level: "_log.Level", message: str, **fields: Any) -> None:
        _log.log(level, str(message), [(k, str(v)) for k, v in fields.items()])

    @staticmethod
    def trace(message: str, **fields: Any) -> None:
        log.write(_log.Level.TRACE, message, **fields)

    @staticmethod
    def debug(message: str, **fields: Any) -> None:
        log.write(_log.Level.DEBUG, message, **fields)

    @staticmethod
    def info(message: str, **fields: Any) -> None:
        log.write(_log.Level.INFO, message, **fields)

    @staticmethod
    def warn(message: str, **fields: Any) -> None:
        log.write(_log.Level.WARN, message, **fields)

    @staticmethod
    def error(message: str, **fields: Any) -> None:
        log.write(_log.Level.ERROR, message, **fields)


# Effects (contract 0.2): emit, state, dedupe. Each works only where the operator configured it
# for the event hub; otherwise the host stops the call and pauses the partition (a fault of the
# deployment, not of the event), so the helpers below never see that case.


class EmitError(Reject):
    """:func:`emit` queued nothing: the source is not an event of the current call
    (``kind == "invalid-source"``) or the event, or all the events emitted by the call, exceed a
    size limit (``kind == "too-large"``). A :class:`Reject`: retrying cannot help."""

    def __init__(self, reason: str, kind: str, index: Optional[int] = None):
        super().__init__(reason)
        self.kind = kind
        if index is not None:
            # The source event's index in its batch: a `handle_batch` that lets this through
            # fails the batch at that event.
            self.index = index


class StateTooLarge(Reject):
    """A state key (``kind == "key-too-large"``) or value (``kind == "value-too-large"``) is
    longer than its limit of ``limit`` bytes; nothing was written. A :class:`Reject`: it comes
    from the event."""

    def __init__(self, reason: str, kind: str, limit: int):
        super().__init__(reason)
        self.kind = kind
        self.limit = limit


class StateFull(Retry):
    """The partition's state would exceed its ``max_bytes``; nothing was written. A
    :class:`Retry`: it is the partition's condition, not the event's, so events wait instead of
    being dead-lettered while the operator raises ``max_bytes`` (or the plugin deletes keys)."""


#: What the effects take as bytes: ``bytes``, ``bytearray``, ``memoryview`` or ``str`` (UTF-8).
_Bytes = Union[bytes, bytearray, memoryview, builtins.str]

#: Entries per ``scan-prefix`` call: the most the host returns at once.
_PAGE = 1000
_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1


def _no_effects(what: str) -> NoReturn:
    raise RuntimeError(
        f"{what} needs the effect imports of hubwasm:plugin@0.2.0 (emit, state, dedupe), which "
        "the bindings of this build lack: build the plugin with a current `hubwasm plugin build`"
    )


def _to_bytes(value: _Bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, builtins.str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


_WIT_PROPERTY_VALUES = (
    _types.PropertyValue_Null,
    _types.PropertyValue_Boolean,
    _types.PropertyValue_Integer,
    _types.PropertyValue_Double,
    _types.PropertyValue_Text,
    _types.PropertyValue_Binary,
    _types.PropertyValue_Timestamp,
    _types.PropertyValue_Uuid,
)


def _to_property_value(name: str, value: Any) -> _types.PropertyValue:
    if value is None:
        return _types.PropertyValue_Null()
    if isinstance(value, bool):
        return _types.PropertyValue_Boolean(value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"property `{name}` = {value} does not fit a signed 64-bit integer")
        return _types.PropertyValue_Integer(value)
    if isinstance(value, float):
        return _types.PropertyValue_Double(value)
    if isinstance(value, builtins.str):
        return _types.PropertyValue_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _types.PropertyValue_Binary(bytes(value))
    if isinstance(value, _WIT_PROPERTY_VALUES):
        return value
    # Timestamps and UUIDs: looked up only if the plugin imported those modules itself.
    dt = _sys.modules.get("datetime")
    if dt is not None and isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # naive datetimes are taken as UTC
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        ms: int = (value - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)
        return _types.PropertyValue_Timestamp(ms)
    uuid = _sys.modules.get("uuid")
    if uuid is not None and isinstance(value, uuid.UUID):
        return _types.PropertyValue_Uuid(builtins.str(value))
    raise TypeError(
        f"property `{name}`: cannot send a {type(value).__name__} (use None, bool, int, float, "
        "str, bytes, datetime.datetime or uuid.UUID)"
    )


def emit(
    output: str,
    source: Union[Event, int],
    body: _Bytes,
    *,
    partition_key: Optional[str] = None,
    content_type: Optional[str] = None,
    properties: Union[Mapping[str, Any], Iterable[Tuple[str, Any]], None] = None,
) -> None:
    """Queue an event with ``body`` for the output named ``output`` (``[[eventhub.output]]``), on
    behalf of ``source``: an :class:`Event` of the current call or its sequence number. It is
    sent after the call succeeds, and the source's checkpoint waits until the output
    acknowledged it (at least once; its message id ``<hub>/<partition>/<source seq>/<n>`` is the
    same on a replay). Events with one ``partition_key`` land in one partition of the output, in
    order. ``properties`` (a dict or ``(name, value)`` pairs, sent in that order) take ``None``,
    ``bool``, ``int`` (64-bit), ``float``, ``str``, ``bytes``, ``datetime.datetime`` (a
    timestamp; naive is UTC) or ``uuid.UUID``.

    Raises :class:`EmitError` (a :class:`Reject`) if nothing was queued: the source is not an
    event of this call, or a size limit was hit. An output the operator did not configure is
    not an error here: the host stops the call and pauses the partition until it is fixed.
    """
    if not _EFFECTS:
        _no_effects("hubwasm.emit")
    index: Optional[int] = None
    if isinstance(source, Event):
        index = source._index
        seq = source.sequence_number
    elif isinstance(source, int) and not isinstance(source, bool):
        seq = source
    else:
        raise TypeError(
            f"emit: source must be an Event or a sequence number, not {type(source).__name__}"
        )
    pairs: Iterable[Tuple[str, Any]]
    if properties is None:
        pairs = ()
    elif isinstance(properties, Mapping):
        pairs = properties.items()
    else:
        pairs = properties
    event = _wit_emit.OutgoingEvent(
        _to_bytes(body, "emit: the body"),
        partition_key,
        content_type,
        [_types.Property(name, _to_property_value(name, value)) for name, value in pairs],
    )
    try:
        _wit_emit.send(output, seq, event)
    except Err as e:
        error = e.value
        if isinstance(error, _wit_emit.EmitError_InvalidSource):
            raise EmitError(
                f"emit: source {error.value} is not an event of the current call",
                "invalid-source",
                index,
            ) from None
        raise EmitError(f"emit: too large: {error.value}", "too-large", index) from None


def _state_error(error: Any) -> Exception:
    if isinstance(error, _wit_state.StateError_KeyTooLarge):
        return StateTooLarge(
            f"state: key too large: longer than the limit of {error.value} bytes",
            "key-too-large",
            error.value,
        )
    if isinstance(error, _wit_state.StateError_ValueTooLarge):
        return StateTooLarge(
            "state: value too large: longer than the partition's max_value_bytes = "
            f"{error.value}",
            "value-too-large",
            error.value,
        )
    return StateFull(f"state: full: {error.value}")


class state:
    """The partition's keyed state (``[eventhub.state]``), exactly once with the checkpoint:
    a call's writes are committed together with the position of the batch's last event before
    the checkpoint moves, and discarded if the call fails. Reads see the committed state plus
    the call's own writes. Keys are strings, values bytes (``str`` values are stored as UTF-8).

    Writes raise :class:`StateTooLarge` (a :class:`Reject`) for a key or value over its limit and
    :class:`StateFull` (a :class:`Retry`) when the partition's state is full; nothing is
    written then.
    """

    @staticmethod
    def get(key: str) -> Optional[bytes]:
        """The value of ``key``, or ``None`` if it is not set."""
        if not _EFFECTS:
            _no_effects("hubwasm.state")
        return _wit_state.get(key)

    @staticmethod
    def set(key: str, value: _Bytes) -> None:
        """Set ``key`` to ``value``."""
        if not _EFFECTS:
            _no_effects("hubwasm.state")
        try:
            _wit_state.set(key, _to_bytes(value, "a state value"))
        except Err as e:
            raise _state_error(e.value) from None

    @staticmethod
    def delete(key: str) -> None:
        """Remove ``key`` (nothing happens if it is not set)."""
        if not _EFFECTS:
            _no_effects("hubwasm.state")
        _wit_state.delete(key)

    @staticmethod
    def scan_prefix(prefix: str) -> Iterator[Tuple[str, bytes]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order, read in pages
        of 1000 as the iteration goes."""
        if not _EFFECTS:
            _no_effects("hubwasm.state")
        after: Optional[str] = None
        while True:
            page = _wit_state.scan_prefix(prefix, after, _PAGE)
            yield from page
            if len(page) < _PAGE:  # a short page is the last one
                return
            after = page[-1][0]

    @staticmethod
    def get_u64(key: str) -> Optional[int]:
        """The number stored at ``key`` by :meth:`add_u64` (8 little-endian bytes); ``None`` if
        it is not set or not 8 bytes long."""
        raw = state.get(key)
        if raw is None or len(raw) != 8:
            return None
        return int.from_bytes(raw, "little")

    @staticmethod
    def add_u64(key: str, delta: int = 1) -> int:
        """Add ``delta`` (0 to 2**64-1) to the number at ``key`` (0 if unset or not a number),
        saturating at 2**64-1; store it as 8 little-endian bytes and return it."""
        if isinstance(delta, bool) or not isinstance(delta, int) or not 0 <= delta <= _U64_MAX:
            raise ValueError(f"add_u64: delta must be an integer from 0 to 2**64-1, not {delta!r}")
        value = min((state.get_u64(key) or 0) + delta, _U64_MAX)
        state.set(key, value.to_bytes(8, "little"))
        return value


class _TotalSeconds(Protocol):
    def total_seconds(self) -> float: ...


def first_seen(key: str, ttl_seconds: Union[int, float, _TotalSeconds]) -> bool:
    """Whether ``key`` is new in the consumer group (not recorded in the last ``ttl_seconds``),
    from ``[eventhub.dedupe]``'s store. The key is recorded when the call's batch commits, so a
    call that fails and is made again sees its keys as new again; within one call a second
    ``first_seen`` of a key is ``False``. ``ttl_seconds`` is a number or a
    ``datetime.timedelta``; a fraction counts as a whole second, and it is capped at 2**32-1.
    """
    if not _EFFECTS:
        _no_effects("hubwasm.first_seen")
    ttl = ttl_seconds if isinstance(ttl_seconds, (int, float)) else ttl_seconds.total_seconds()
    if not ttl >= 0:  # also NaN
        raise ValueError(f"first_seen: ttl_seconds must be 0 or more, not {ttl_seconds!r}")
    secs = _U32_MAX if ttl >= _U32_MAX else _math.ceil(ttl)
    return _wit_dedupe.first_seen(key, secs)


class HttpError(Retry):
    """An HTTP request got no answer: the host refused the origin (``code ==
    "HTTP-request-denied"``: it is not in ``allowed_outbound_hosts``), the connection failed, or
    the call timeout cut it. ``code`` is the ``wasi:http`` error code as its WIT spells it. A
    :class:`Retry`: raised from a handler, the host retries the event."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class Response:
    """An HTTP answer, read whole: ``status``, ``headers`` (name, value pairs; names in lower
    case) and ``body``."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: List[Tuple[str, bytes]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (any case) as text, or ``None``."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body={len(self.body)} bytes)"


#: Most bytes one ``blocking-write-and-flush`` takes (wasi:io's limit).
_WRITE_CHUNK = 4096
#: Most bytes of a response body :func:`http.request` reads (a larger one raises HttpError).
_MAX_RESPONSE = 64 * 1024 * 1024


def _error_code_name(code: Any) -> str:
    """`ErrorCode_HttpRequestDenied(...)` as the WIT spells it: `HTTP-request-denied`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    words: List[str] = []
    start = 0
    for at in range(1, len(name) + 1):
        if at == len(name) or name[at].isupper():
            word = name[start:at]
            upper = word in ("Dns", "Ip", "Tls", "Http", "Uri")
            words.append(word.upper() if upper else word.lower())
            start = at
    text = "-".join(words)
    value = getattr(code, "value", None)
    return f"{text}({value!r})" if value is not None else text


class http:
    """Outbound HTTP through ``wasi:http``: ``http.get(url)``, ``http.post(url, body)``,
    ``http.request(method, url, ...)``. Each blocks until the whole answer is read and returns a
    :class:`Response` whatever its status; no answer raises :class:`HttpError`."""

    @staticmethod
    def get(
        url: str,
        headers: Optional[Mapping[str, _Bytes]] = None,
        timeout_ms: Optional[int] = None,
    ) -> Response:
        return http.request("GET", url, headers=headers, timeout_ms=timeout_ms)

    @staticmethod
    def post(
        url: str,
        body: _Bytes,
        headers: Optional[Mapping[str, _Bytes]] = None,
        content_type: Optional[str] = None,
        timeout_ms: Optional[int] = None,
    ) -> Response:
        return http.request(
            "POST", url, body, headers=headers, content_type=content_type, timeout_ms=timeout_ms
        )

    @staticmethod
    def request(
        method: str,
        url: str,
        body: Optional[_Bytes] = None,
        headers: Optional[Mapping[str, _Bytes]] = None,
        content_type: Optional[str] = None,
        timeout_ms: Optional[int] = None,
    ) -> Response:
        """Send ``method url`` with ``body`` and ``headers``; ``timeout_ms`` bounds connecting,
        the first byte and each later one (the host also cuts at the plugin's call timeout)."""
        if not _HTTP:
            raise RuntimeError(
                "hubwasm.http needs wasi:http, which this build lacks: build the plugin with a "
                "current `hubwasm plugin build` (world batch-plugin-http)"
            )
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest:
            raise ValueError(f"http: `{url}` is not an http:// or https:// URL")
        rest = rest.split("#", 1)[0]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, path = rest[:cut], rest[cut:]
        if not authority or "@" in authority:
            raise ValueError(f"http: `{url}` has no host, or has credentials in it")
        path = "/" + path if not path.startswith("/") else path
        fields = [(k, _to_bytes(v, f"header `{k}`")) for k, v in (headers or {}).items()]
        if content_type is not None:
            fields.append(("content-type", content_type.encode("utf-8")))
        ht = _http_types
        try:
            request = ht.OutgoingRequest(ht.Fields.from_list(fields))
        except Err as e:
            raise ValueError(f"http: a header is invalid ({e.value!r})") from None
        upper = method.upper()
        known: Dict[str, Callable[[], _http_types.Method]] = {
            "GET": ht.Method_Get,
            "HEAD": ht.Method_Head,
            "POST": ht.Method_Post,
            "PUT": ht.Method_Put,
            "DELETE": ht.Method_Delete,
            "PATCH": ht.Method_Patch,
            "OPTIONS": ht.Method_Options,
        }
        request.set_method(known[upper]() if upper in known else ht.Method_Other(method))
        request.set_scheme(ht.Scheme_Https() if scheme.lower() == "https" else ht.Scheme_Http())
        try:
            request.set_authority(authority)
            request.set_path_with_query(path)
        except Err:
            raise ValueError(f"http: `{url}` is not a valid URL") from None
        options = None
        if timeout_ms is not None:
            options = ht.RequestOptions()
            ns = max(0, int(timeout_ms)) * 1_000_000
            for setter in (
                options.set_connect_timeout,
                options.set_first_byte_timeout,
                options.set_between_bytes_timeout,
            ):
                try:
                    setter(ns)
                except Err:
                    pass  # the host does not support this one: its call timeout still holds
        outgoing = request.body()
        try:
            future = _wit_http.handle(request, options)
        except Err as e:
            code = _error_code_name(e.value)
            raise HttpError(f"{method} {url}: {code}", code) from None
        # Send, then stream the body: the host reads it while connecting.
        data = _to_bytes(body, "the request body") if body is not None else b""
        try:
            with outgoing.write() as stream:
                for at in range(0, len(data), _WRITE_CHUNK):
                    stream.blocking_write_and_flush(data[at : at + _WRITE_CHUNK])
            ht.OutgoingBody.finish(outgoing, None)
        except Err:
            pass  # the connection failed while sending: the answer below says why
        with future:
            with future.subscribe() as ready:
                ready.block()  # the instance waits; the host does the I/O
            answer = future.get()
        if answer is None or isinstance(answer, Err):
            raise HttpError(f"{method} {url}: no response", "internal-error")
        outcome = answer.value
        if isinstance(outcome, Err):
            code = _error_code_name(outcome.value)
            raise HttpError(f"{method} {url}: {code}", code)
        with outcome.value as response:
            status = response.status()
            with response.headers() as fields_in:
                entries = fields_in.entries()
            incoming = response.consume()
            chunks: List[bytes] = []
            size = 0
            try:
                with incoming.stream() as stream_in:
                    while True:
                        try:
                            chunk = stream_in.blocking_read(64 * 1024)
                        except Err as e:
                            if isinstance(e.value, _StreamClosed):
                                break
                            raise HttpError(
                                f"{method} {url}: reading the response body failed",
                                "internal-error",
                            ) from None
                        size += len(chunk)
                        if size > _MAX_RESPONSE:
                            raise HttpError(
                                f"{method} {url}: the response body is over "
                                f"{_MAX_RESPONSE >> 20} MiB",
                                "HTTP-response-body-size",
                            )
                        chunks.append(chunk)
            finally:
                # A resource goes before the one it came from: the body before the response.
                with ht.IncomingBody.finish(incoming):
                    pass
        return Response(status, entries, b"".join(chunks))


# The instance of the user's plugin class (one per component instance), made by `init`.
_factory: Optional[Callable[[Config], Any]] = None
_instance: Any = None


def _verdict(index: int, error: Exception) -> Err[_types.BatchError]:
    failure: _types.EventError
    if isinstance(error, Retry):
        after = error.after_ms
        if after is not None:
            after = max(0, min(int(after), 0xFFFFFFFF))
        failure = _types.EventError_Retryable(_types.RetryableError(error.message, after))
    elif isinstance(error, Reject):
        failure = _types.EventError_Rejected(error.reason)
    else:
        raise error
    return Err(_types.BatchError(index, failure))


class _Lifecycle(_exports.Lifecycle):
    def init(self, config: List[Tuple[str, str]]) -> None:
        global _instance
        if _factory is None:
            raise Err("no plugin class: decorate your class with @hubwasm.plugin")
        try:
            _instance = _factory(Config(config))
        except Exception as e:  # a refusal to start, with its reason
            message = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            raise Err(message) from None

    def partition_opened(self, context: _types.PartitionContext) -> None:
        hook = getattr(_instance, "opened", None)
        if hook is not None:
            hook(context)

    def partition_closed(self, context: _types.PartitionContext, reason: _types.CloseReason) -> None:
        hook = getattr(_instance, "closed", None)
        if hook is not None:
            hook(context, reason)

    def partition_error(self, context: _types.PartitionContext, message: str) -> None:
        hook = getattr(_instance, "error", None)
        if hook is not None:
            hook(context, message)


class _BatchHandler(_exports.BatchHandler):
    def handle_batch(self, context: _types.PartitionContext, batch: _types.EventBatch) -> None:
        view = Batch(batch)
        whole = getattr(_instance, "handle_batch", None)
        if whole is not None:
            # The plugin takes the whole batch; a Retry/Reject raised with `.index` set says
            # which event failed (events before it count as handled); without it, the first.
            try:
                whole(context, view)
            except (Retry, Reject) as e:
                raise _verdict(int(getattr(e, "index", 0) or 0), e) from None
            return
        handle = _instance.handle
        for i in range(len(view)):
            try:
                handle(context, Event(view, i))
            except (Retry, Reject) as e:
                raise _verdict(i, e) from None


_Plugin = TypeVar("_Plugin", bound=Type[Any])


def plugin(cls: _Plugin) -> _Plugin:
    """Make ``cls`` the plugin: the host builds it with ``cls(config)`` on each new instance,
    then calls ``handle(ctx, event)`` (or ``handle_batch(ctx, batch)`` if defined) and the
    optional hooks ``opened(ctx)``, ``closed(ctx, reason)``, ``error(ctx, message)``."""
    global _factory
    import inspect
    import sys

    if not (callable(getattr(cls, "handle", None)) or callable(getattr(cls, "handle_batch", None))):
        raise TypeError(f"{cls.__name__} needs a handle(self, ctx, event) method")
    params = len(inspect.signature(cls).parameters)
    _factory = (lambda config: cls(config)) if params else (lambda config: cls())
    # componentize-py looks for the exports in the app module.
    module = sys.modules[cls.__module__]
    setattr(module, "Lifecycle", _Lifecycle)
    setattr(module, "BatchHandler", _BatchHandler)
    return cls
