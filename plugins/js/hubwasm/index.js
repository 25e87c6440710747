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
// only when read, and `body` is a view, not a copy. Build with `hubwasm plugin build`
// (componentize-js, world batch-plugin, without wasi:http).

import { log as hostLog } from "hubwasm:plugin/log@0.2.0";

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
  /** The body, a view into the batch (copy it with `slice()` to keep it beyond the call). */
  get body() {
    return this.batch.bytes(this.index, BODY) ?? new Uint8Array(0);
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

function verdict(index, error) {
  if (error instanceof Retry) {
    let after = error.afterMs;
    if (after !== undefined && after !== null) after = Math.max(0, Math.min(Math.floor(after), 0xffffffff));
    else after = undefined;
    return { failedAt: index, error: { tag: "retryable", val: { message: String(error.message), retryAfterMs: after } } };
  }
  return { failedAt: index, error: { tag: "rejected", val: String(error.message) } };
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
  const batchHandler = {
    handleBatch(ctx, raw) {
      const batch = new Batch(raw);
      if (typeof instance.handleBatch === "function") {
        try {
          instance.handleBatch(ctx, batch);
        } catch (e) {
          if (e instanceof Retry || e instanceof Reject) throw verdict(e.index ?? 0, e);
          crash(e);
        }
        return;
      }
      for (let i = 0; i < batch.length; i++) {
        try {
          instance.handle(ctx, new Event(batch, i));
        } catch (e) {
          if (e instanceof Retry || e instanceof Reject) throw verdict(i, e);
          crash(e);
        }
      }
    },
  };
  return { lifecycle, batchHandler };
}
