// Write hubwasm plugins in JavaScript.
//
// A plugin is a class with a `handle(ctx, event)` method; `plugin(Class)` returns the two
// exports the component needs:
//
//   import { plugin, Reject } from "hubwasm";
//
//   class NonEmpty {
//     constructor(config) { this.limit = config.int("limit", 100); }
//     handle(ctx, event) {
//       if (event.body.length === 0) throw new Reject("empty body");
//     }
//   }
//   export const { lifecycle, batchHandler } = plugin(NonEmpty);
//
// Verdicts are what JavaScript does anyway: return for success, `throw new Retry(...)` for a
// transient failure (the host retries with backoff), `throw new Reject(...)` for a poison event
// (dead-lettered or halted, as the operator configured). Anything else thrown is a bug: its
// stack goes to the host's log and the call traps, which the host treats like a crash (a fresh
// instance, retries, then the failure policy).
//
// Events are views over the batch the host copied in as a few typed arrays: a field is decoded
// only when read, and `body` is a view, not a copy (emptied when the call returns). Build with
// `hubwasm plugin build` (componentize-js, world batch-plugin, with wasi:http for `fetch`).
//
// Effects (contract 0.2; each works only where the operator configured it for the event hub):
//
//   emit("alerts", event, event.body, { partitionKey: event.partitionKey }); // at least once
//   state.addU64("count/all");                           // exactly once with the checkpoint
//   if (firstSeen(`order/${orderId}`, 86_400)) { ... }   // the consumer group's dedupe store
//
// Their errors are verdicts, so a handler just calls them: an emitted event or a state key or
// value too large throws `EmitError` / `StateTooLarge` (both `Reject`), a full state `StateFull`
// (a `Retry`).
//
// Outbound HTTP is the standard `fetch` (wasi:http), to the origins the operator allows
// (`allowed_outbound_hosts`). Make the handler `async` and await it: the host waits for the
// returned Promise before it checkpoints; a refused origin, a failed connection or the call
// timeout reject the fetch with a TypeError.
//
//   async handle(ctx, event) {
//     const res = await fetch("https://enrich.example.com/v1", { method: "POST", body: event.body });
//     if (!res.ok) throw new Retry(`enrich answered ${res.status}`);
//   }

import { log as hostLog } from "hubwasm:plugin/log@0.2.0";
import { send as hostSend } from "hubwasm:plugin/emit@0.2.0";
import * as hostState from "hubwasm:plugin/state@0.2.0";
import { firstSeen as hostFirstSeen } from "hubwasm:plugin/dedupe@0.2.0";

const ABSENT = 0xffffffff;
const FIELDS = 7; // spans per event: body, offset, key, content type, correlation id, message id, props
const BODY = 0, OFFSET = 1, KEY = 2, CONTENT_TYPE = 3, CORRELATION_ID = 4, MESSAGE_ID = 5, PROPERTIES = 6;
const utf8 = new TextDecoder("utf-8");
// `text()` refuses bytes that are not UTF-8, as Rust's `str::from_utf8` does.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A transient failure: the host retries the event later (not before `afterMs`). */
export class Retry extends Error {
  constructor(message, { afterMs } = {}) {
    super(message);
    this.name = "Retry";
    this.afterMs = afterMs;
  }
}

/** The event itself is bad (poison): retrying will not help. */
export class Reject extends Error {
  constructor(reason) {
    super(reason);
    this.name = "Reject";
  }
}

/** A config value is missing or does not parse; the plugin refuses to start. */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "ConfigError";
  }
}

const INT = /^[+-]?[0-9]+$/;
const I64_MIN = -(2n ** 63n), I64_MAX = 2n ** 63n - 1n;

/** The plugin's `key = value` settings from the host config (all strings). */
export class Config {
  constructor(pairs) {
    this.values = new Map();
    for (const [k, v] of pairs) this.values.set(k, v); // the last one wins
  }
  get(key, fallback) {
    return this.values.has(key) ? this.values.get(key) : fallback;
  }
  has(key) {
    return this.values.has(key);
  }
  require(key) {
    if (!this.values.has(key)) throw new ConfigError(`config \`${key}\` is required`);
    return this.values.get(key);
  }
  string(key, fallback) {
    return this.get(key, fallback);
  }
  /** An integer within 64 bits, as a Number (exact up to 2^53). */
  int(key, fallback) {
    return this.#parse(key, fallback, "an integer", (raw) => {
      if (!INT.test(raw)) return undefined;
      const n = BigInt(raw);
      return n < I64_MIN || n > I64_MAX ? undefined : Number(n);
    });
  }
  float(key, fallback) {
    return this.#parse(key, fallback, "a number", (raw) => {
      const n = raw.trim() === "" ? NaN : Number(raw);
      return Number.isNaN(n) ? undefined : n;
    });
  }
  bool(key, fallback) {
    return this.#parse(key, fallback, "true or false", (raw) =>
      raw === "true" ? true : raw === "false" ? false : undefined);
  }
  #parse(key, fallback, what, parse) {
    if (!this.values.has(key)) return fallback;
    const raw = this.values.get(key);
    const value = parse(raw);
    if (value === undefined) throw new ConfigError(`config \`${key}\` = \`${raw}\` is invalid: expected ${what}`);
    return value;
  }
}

/** A batch of consecutive events of one partition; iterate it for `Event` views. */
export class Batch {
  constructor(raw) {
    // Contract 0.2's columns are little-endian bytes (wasm is little-endian): typed views over
    // them cost nothing per event.
    this.raw = raw;
    this.spans = typed(Uint32Array, raw.spans);
    this.data = raw.data;
    this.seqs = typed(BigInt64Array, raw.sequenceNumbers);
    this.length = this.seqs.length;
    this.times = undefined;
    this.props = undefined;
  }
  /** The properties column as 32-bit words, 64-bit integers and doubles (made when first read). */
  propertyViews() {
    const raw = this.raw.properties;
    return (this.props ??= {
      words: typed(Uint32Array, raw),
      ints: typed(BigInt64Array, raw),
      doubles: typed(Float64Array, raw),
    });
  }
  at(index) {
    if (index < 0) index += this.length;
    return index >= 0 && index < this.length ? new Event(this, index) : undefined;
  }
  *[Symbol.iterator]() {
    for (let i = 0; i < this.length; i++) yield new Event(this, i);
  }
  bytes(index, field) {
    const at = (index * FIELDS + field) * 2;
    const start = this.spans[at];
    return start === ABSENT ? undefined : this.data.subarray(start, start + this.spans[at + 1]);
  }
  text(index, field) {
    const raw = this.bytes(index, field);
    return raw === undefined ? undefined : utf8.decode(raw);
  }
}

/** One event of a batch. Each field is read from the batch when asked for. */
export class Event {
  constructor(batch, index) {
    this.batch = batch;
    this.index = index;
  }
  /** The body, a view into the batch, emptied when the call returns (copy it with `slice()` to
   * keep it longer). */
  get body() {
    // `Batch.bytes`, inline: what nearly every handler reads, and a call costs in the interpreter.
    const b = this.batch, at = (this.index * FIELDS + BODY) * 2;
    const start = b.spans[at];
    return start === ABSENT ? new Uint8Array(0) : b.data.subarray(start, start + b.spans[at + 1]);
  }
  /** The body as UTF-8 text (throws a TypeError if it is not). */
  text() {
    return strictUtf8.decode(this.body);
  }
  /** The body parsed as JSON (throws a SyntaxError if it is not). */
  json() {
    return JSON.parse(this.text());
  }
  get sequenceNumber() {
    return Number(this.batch.seqs[this.index]);
  }
  get offset() {
    return this.batch.text(this.index, OFFSET) ?? "";
  }
  /** When Event Hubs accepted the event, milliseconds since the Unix epoch (UTC). */
  get enqueuedTimeMs() {
    const b = this.batch;
    b.times ??= typed(BigInt64Array, b.raw.enqueuedTimesMs);
    return Number(b.times[this.index]);
  }
  get partitionKey() {
    return this.batch.text(this.index, KEY);
  }
  get contentType() {
    return this.batch.text(this.index, CONTENT_TYPE);
  }
  get correlationId() {
    return this.batch.text(this.index, CORRELATION_ID);
  }
  get messageId() {
    return this.batch.text(this.index, MESSAGE_ID);
  }
  /** Application properties: null, boolean, number (integers as BigInt beyond 2^53), string
   * or Uint8Array (timestamps as milliseconds, UUIDs as text). */
  get properties() {
    const b = this.batch;
    const at = (this.index * FIELDS + PROPERTIES) * 2;
    const start = b.spans[at], len = b.spans[at + 1];
    const out = {};
    if (start === ABSENT) return out;
    const views = b.propertyViews();
    for (let entry = start; entry < start + len; entry++) {
      const w = entry * ENTRY_WORDS;
      const key = utf8.decode(b.data.subarray(views.words[w], views.words[w] + views.words[w + 1]));
      out[key] = propertyValue(views.words[w + 2], entry, views, b.data);
    }
    return out;
  }
  property(name) {
    return this.properties[name];
  }
}

// A property entry is 24 bytes: name start, name length, kind, zero (32-bit words), value (64-bit).
const ENTRY_WORDS = 6;
const P_NULL = 0, P_BOOLEAN = 1, P_INTEGER = 2, P_DOUBLE = 3, P_TEXT = 4, P_BINARY = 5, P_TIMESTAMP = 6, P_UUID = 7;

function propertyValue(kind, entry, views, data) {
  const w = entry * ENTRY_WORDS + 4; // the value word, as two 32-bit words
  switch (kind) {
    case P_TEXT:
    case P_UUID:
      return utf8.decode(data.subarray(views.words[w], views.words[w] + views.words[w + 1]));
    case P_BINARY:
      return data.slice(views.words[w], views.words[w] + views.words[w + 1]);
    case P_INTEGER:
    case P_TIMESTAMP: {
      const n = views.ints[entry * 3 + 2];
      return n >= -(2n ** 53n) && n <= 2n ** 53n ? Number(n) : n;
    }
    case P_BOOLEAN:
      return views.ints[entry * 3 + 2] !== 0n;
    case P_DOUBLE:
      return views.doubles[entry * 3 + 2];
    default:
      return null;
  }
}

/** A typed array over little-endian `bytes`, copied once if they are not aligned for it. */
function typed(Type, bytes) {
  const size = Type.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  return new Type(bytes.buffer, bytes.byteOffset, Math.floor(bytes.length / size));
}

function write(level, message, fields) {
  hostLog(level, String(message), Object.entries(fields ?? {}).map(([k, v]) => [k, String(v)]));
}

/** Logging into the host's log, tagged with the plugin's name: `log.info("msg", { key: v })`. */
export const log = {
  trace: (message, fields) => write("trace", message, fields),
  debug: (message, fields) => write("debug", message, fields),
  info: (message, fields) => write("info", message, fields),
  warn: (message, fields) => write("warn", message, fields),
  error: (message, fields) => write("error", message, fields),
};

// Effects (contract 0.2): emit, state, dedupe. Using one the operator did not configure for the
// event hub stops the call and pauses the partition (a fault of the deployment, not of the
// event), so the helpers below never see that case.

/** `emit` queued nothing: the source is not an event of the current call (`kind`
 * "invalid-source") or a size limit was hit ("too-large"). A `Reject`: retrying cannot help. */
export class EmitError extends Reject {
  constructor(reason, kind, index) {
    super(reason);
    this.name = "EmitError";
    this.kind = kind;
    // The source event's index in its batch: a `handleBatch` that lets this through fails the
    // batch at that event.
    if (index !== undefined) this.index = index;
  }
}

/** A state key ("key-too-large") or value ("value-too-large") longer than its limit of `limit`
 * bytes; nothing was written. A `Reject`: it comes from the event. */
export class StateTooLarge extends Reject {
  constructor(reason, kind, limit) {
    super(reason);
    this.name = "StateTooLarge";
    this.kind = kind;
    this.limit = limit;
  }
}

/** The partition's state would exceed its `max_bytes`; nothing was written. A `Retry`: the
 * partition's condition, not the event's, so events wait while the operator raises it. */
export class StateFull extends Retry {
  constructor(message) {
    super(message);
    this.name = "StateFull";
  }
}

const utf8Encoder = new TextEncoder();
const PAGE = 1000; // entries per scan-prefix call: the most the host returns at once
const U64_MAX = 2n ** 64n - 1n;
const U32_MAX = 0xffffffff;

/** `value` as a Uint8Array: bytes as they are, a string as UTF-8. */
function toBytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return utf8Encoder.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`${what} must be a Uint8Array, an ArrayBuffer or a string, not ${describe(value)}`);
}

function describe(value) {
  return value === null ? "null" : typeof value === "object" ? value.constructor?.name ?? "object" : typeof value;
}

// What an import threw: jco-style bindings wrap a `result`'s error in an Error with `payload`.
function importError(e) {
  const err = e !== null && typeof e === "object" && "payload" in e ? e.payload : e;
  return err !== null && typeof err === "object" && typeof err.tag === "string" ? err : undefined;
}

const WIT_TAGS = new Set(["null", "boolean", "integer", "double", "text", "binary", "timestamp", "uuid"]);

function toPropertyValue(name, value) {
  switch (typeof value) {
    case "boolean":
      return { tag: "boolean", val: value };
    case "number":
      return Number.isSafeInteger(value) ? { tag: "integer", val: BigInt(value) } : { tag: "double", val: value };
    case "bigint":
      if (value < I64_MIN || value > I64_MAX) throw new RangeError(`property \`${name}\` = ${value} does not fit a signed 64-bit integer`);
      return { tag: "integer", val: value };
    case "string":
      return { tag: "text", val: value };
  }
  if (value === null || value === undefined) return { tag: "null" };
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new RangeError(`property \`${name}\` is an invalid Date`);
    return { tag: "timestamp", val: BigInt(ms) };
  }
  if (value instanceof Uint8Array || value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    return { tag: "binary", val: toBytes(value, `property \`${name}\``) };
  }
  if (typeof value === "object" && WIT_TAGS.has(value.tag)) return value; // already the contract's form
  throw new TypeError(`property \`${name}\`: cannot send ${describe(value)} (use null, a boolean, number, bigint, string, Uint8Array or Date)`);
}

/**
 * Queue an event with `body` for the output named `output` (`[[eventhub.output]]`), on behalf of
 * `source`: an `Event` of the current call or its sequence number. It is sent after the call
 * succeeds, and the source's checkpoint waits until the output acknowledged it (at least once;
 * its message id `<hub>/<partition>/<source seq>/<n>` is the same on a replay). Throws
 * `EmitError` (a `Reject`) if nothing was queued.
 */
export function emit(output, source, body, { partitionKey, contentType, properties } = {}) {
  let seq, index;
  if (source instanceof Event) {
    seq = source.batch.seqs[source.index]; // exact, even beyond 2^53
    index = source.index;
  } else if (typeof source === "bigint") {
    seq = source;
  } else if (Number.isSafeInteger(source)) {
    seq = BigInt(source);
  } else {
    throw new TypeError(`emit: source must be an Event or a sequence number, not ${describe(source)}`);
  }
  let entries = [];
  if (properties instanceof Map || Array.isArray(properties)) entries = [...properties];
  else if (properties !== null && properties !== undefined) entries = Object.entries(properties);
  const event = {
    body: toBytes(body, "emit: the body"),
    partitionKey: partitionKey ?? undefined,
    contentType: contentType ?? undefined,
    properties: entries.map(([key, value]) => ({ key: String(key), value: toPropertyValue(key, value) })),
  };
  // No event has a negative sequence number, so the host would answer `invalid-source`; say it
  // here, since componentize-js 0.23 cannot pass a negative s64 argument (it aborts the
  // instance, ComponentizeJS#343).
  if (seq < 0n || seq > I64_MAX) {
    throw new EmitError(`emit: source ${seq} is not an event of the current call`, "invalid-source", index);
  }
  try {
    hostSend(String(output), seq, event);
  } catch (e) {
    const err = importError(e);
    if (err?.tag === "invalid-source") {
      // componentize-js lifts an s64 as unsigned: the same 64 bits, read signed.
      const bad = BigInt.asIntN(64, BigInt(err.val));
      throw new EmitError(`emit: source ${bad} is not an event of the current call`, "invalid-source", index);
    }
    if (err?.tag === "too-large") throw new EmitError(`emit: too large: ${err.val}`, "too-large", index);
    throw e;
  }
}

function stateError(e) {
  const err = importError(e);
  switch (err?.tag) {
    case "key-too-large":
      return new StateTooLarge(`state: key too large: longer than the limit of ${err.val} bytes`, "key-too-large", err.val);
    case "value-too-large":
      return new StateTooLarge(
        `state: value too large: longer than the partition's max_value_bytes = ${err.val}`,
        "value-too-large",
        err.val,
      );
    case "full":
      return new StateFull(`state: full: ${err.val}`);
    default:
      return e;
  }
}

/** A u64 as a Number when exact (up to 2^53), else a BigInt. */
function u64Result(n) {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

/**
 * The partition's keyed state (`[eventhub.state]`), exactly once with the checkpoint: a call's
 * writes are committed with the position of the batch's last event before the checkpoint moves,
 * and discarded if the call fails. Reads see the committed state plus the call's own writes.
 * Writes throw `StateTooLarge` (a `Reject`) or `StateFull` (a `Retry`); nothing is written then.
 */
export const state = {
  /** The value of `key`, or undefined if it is not set. */
  get(key) {
    return hostState.get(String(key)) ?? undefined;
  },
  /** Set `key` to `value` (bytes, or a string stored as UTF-8). */
  set(key, value) {
    const bytes = toBytes(value, "a state value");
    try {
      hostState.set(String(key), bytes);
    } catch (e) {
      throw stateError(e);
    }
  },
  /** Remove `key` (nothing happens if it is not set). */
  delete(key) {
    hostState.delete(String(key));
  },
  /** Every `[key, value]` whose key starts with `prefix`, in key order, read in pages of 1000. */
  *scanPrefix(prefix) {
    prefix = String(prefix);
    let after;
    for (;;) {
      const page = hostState.scanPrefix(prefix, after, PAGE);
      yield* page;
      if (page.length < PAGE) return; // a short page is the last one
      after = page[page.length - 1][0];
    }
  },
  /** The number stored at `key` by `addU64` (8 little-endian bytes): a Number up to 2^53, a
   * BigInt beyond; undefined if not set or not 8 bytes long. */
  getU64(key) {
    const n = readU64(key);
    return n === undefined ? undefined : u64Result(n);
  },
  /** Add `delta` (default 1; a non-negative Number or BigInt) to the number at `key` (0 if unset
   * or not a number), saturating at 2^64-1; store it as 8 little-endian bytes and return it. */
  addU64(key, delta = 1) {
    let d;
    if (typeof delta === "bigint") d = delta;
    else if (Number.isSafeInteger(delta)) d = BigInt(delta);
    if (d === undefined || d < 0n || d > U64_MAX) {
      throw new RangeError(`addU64: delta must be an integer from 0 to 2^64-1, not ${typeof delta === "string" ? JSON.stringify(delta) : String(delta)}`);
    }
    let n = (readU64(key) ?? 0n) + d;
    if (n > U64_MAX) n = U64_MAX;
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, n, true);
    state.set(key, bytes);
    return u64Result(n);
  },
};

function readU64(key) {
  const raw = state.get(key);
  if (raw === undefined || raw.length !== 8) return undefined;
  return new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0, true);
}

/**
 * Whether `key` is new in the consumer group (not recorded in the last `ttlSeconds`), from
 * `[eventhub.dedupe]`'s store. The key is recorded when the call's batch commits, so a call that
 * fails and is made again sees its keys as new again; within one call a second `firstSeen` of a
 * key is false. A fraction of a second counts as a whole one; the ttl is capped at 2^32-1.
 */
export function firstSeen(key, ttlSeconds) {
  const ttl = Number(ttlSeconds);
  if (!(ttl >= 0)) throw new RangeError(`firstSeen: ttlSeconds must be 0 or more, not ${String(ttlSeconds)}`);
  return hostFirstSeen(String(key), ttl >= U32_MAX ? U32_MAX : Math.ceil(ttl));
}

function verdict(index, error) {
  if (error instanceof Retry) {
    let after = error.afterMs;
    if (after !== undefined && after !== null) after = Math.max(0, Math.min(Math.floor(after), 0xffffffff));
    else after = undefined;
    return { failedAt: index, error: { tag: "retryable", val: { message: String(error.message), retryAfterMs: after } } };
  }
  return { failedAt: index, error: { tag: "rejected", val: String(error.message) } };
}

// A batch's columns are garbage once its call is over (event views do not outlive it, see
// `Event.body`): free them now instead of at the engine's next collection, which lets the
// columns of a few hundred batches pile up first (an instance then grows to ~70 MB instead of
// ~23 MB).
function release(raw) {
  for (const column of [raw.spans, raw.data, raw.sequenceNumbers, raw.enqueuedTimesMs, raw.properties]) {
    try {
      column.buffer.transfer(0); // detaches the column, freeing its bytes
    } catch {
      // Already detached (columns sharing a buffer) or not transferable: the GC frees it.
    }
  }
}

function isThenable(value) {
  return value !== null && typeof value === "object" && typeof value.then === "function";
}

// Event `index` failed with `error`: a verdict for `Retry` / `Reject`, anything else a crash.
function fail(error, index) {
  if (error instanceof Retry || error instanceof Reject) throw verdict(index, error);
  crash(error);
}

// A bug in the plugin: print the stack to stderr (the host's log), then trap.
function crash(error) {
  const text = error instanceof Error ? (error.stack ? `${error}\n${error.stack}` : String(error)) : `Uncaught ${String(error)}`;
  console.error(`Uncaught ${text}`);
  throw new Error("the plugin threw an unexpected exception (its stack is in the log above)");
}

/**
 * Make `PluginClass` the plugin: the host builds it with `new PluginClass(config)` on each new
 * instance, then calls `handle(ctx, event)` (or `handleBatch(ctx, batch)` if defined) and the
 * optional hooks `opened(ctx)`, `closed(ctx, reason)`, `error(ctx, message)`. Returns the
 * `lifecycle` and `batchHandler` exports.
 */
export function plugin(PluginClass) {
  if (typeof PluginClass?.prototype?.handle !== "function" && typeof PluginClass?.prototype?.handleBatch !== "function") {
    throw new TypeError(`${PluginClass?.name ?? PluginClass} needs a handle(ctx, event) method`);
  }
  let instance;
  const lifecycle = {
    init(config) {
      try {
        instance = new PluginClass(new Config(config));
      } catch (e) {
        throw e instanceof ConfigError ? e.message : `${e?.name ?? "Error"}: ${e?.message ?? e}`;
      }
    },
    partitionOpened(ctx) {
      instance?.opened?.(ctx);
    },
    partitionClosed(ctx, reason) {
      instance?.closed?.(ctx, reason);
    },
    partitionError(ctx, message) {
      instance?.error?.(ctx, message);
    },
  };
  // A handler may be async (return a Promise, e.g. to await `fetch`): the batch then goes on
  // asynchronously from that event, and componentize-js runs the event loop until the returned
  // Promise settles. Synchronous handlers never create one.
  const batchHandler = {
    handleBatch(ctx, raw) {
      let pending;
      try {
        pending = handleBatch(ctx, raw);
      } finally {
        // Done (or thrown) now; an async handler's batch is released once it settles.
        if (pending === undefined) release(raw);
      }
      return pending?.finally(() => release(raw));
    },
  };
  // The batch's handling: undefined when done, or a Promise if a handler is async.
  function handleBatch(ctx, raw) {
    const batch = new Batch(raw);
    if (typeof instance.handleBatch === "function") {
      let pending;
      try {
        pending = instance.handleBatch(ctx, batch);
      } catch (e) {
        fail(e, e?.index ?? 0);
      }
      if (isThenable(pending)) return Promise.resolve(pending).then(() => undefined, (e) => fail(e, e?.index ?? 0));
      return undefined;
    }
    for (let i = 0; i < batch.length; i++) {
      let pending;
      try {
        pending = instance.handle(ctx, new Event(batch, i));
      } catch (e) {
        fail(e, i);
      }
      // A synchronous handler returns undefined: no call to look further.
      if (pending !== undefined && isThenable(pending)) return handleRest(ctx, batch, i, pending);
    }
    return undefined;
  }
  // Await event `i`'s handler, then handle the rest of the batch one event at a time.
  async function handleRest(ctx, batch, i, pending) {
    try {
      await pending;
    } catch (e) {
      fail(e, i);
    }
    for (let j = i + 1; j < batch.length; j++) {
      try {
        await instance.handle(ctx, new Event(batch, j));
      } catch (e) {
        fail(e, j);
      }
    }
  }
  return { lifecycle, batchHandler };
}
