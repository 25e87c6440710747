// TypeScript declarations for the hubwasm JavaScript guest library (index.js). The contract's
// own types (hubwasm:plugin@0.2.0, world batch-plugin) are generated from wit/v0.2/plugin.wit into
// ./types by `hubwasm plugin types`; this file builds the library's API on them.
/// <reference path="./types/batch-plugin.d.ts" />
import type { PartitionContext, CloseReason as WitCloseReason } from "hubwasm:plugin/types@0.2.0";

/** Where events come from (WIT `partition-context`). */
export type Context = PartitionContext;

/** Why a partition is closed (WIT `close-reason`). */
export type CloseReason = WitCloseReason;

/** An application property value. Integers beyond 2^53 are BigInt; timestamps are epoch ms. */
export type PropertyValue = null | boolean | number | bigint | string | Uint8Array;

/** A transient failure: the host retries the event later (not before `afterMs`). */
export class Retry extends Error {
  constructor(message: string, options?: { afterMs?: number });
  afterMs?: number;
}

/** The event itself is bad (poison): dead-lettered or halted, as configured. */
export class Reject extends Error {
  constructor(reason: string);
}

/** A config value is missing or does not parse: the plugin refuses to start. */
export class ConfigError extends Error {
  constructor(message: string);
}

/** The plugin's `key = value` settings (all strings); typed getters throw ConfigError. */
export class Config {
  get(key: string, fallback: string): string;
  get(key: string): string | undefined;
  has(key: string): boolean;
  require(key: string): string;
  string(key: string, fallback: string): string;
  string(key: string): string | undefined;
  /** An integer within 64 bits, as a Number (exact up to 2^53). */
  int(key: string, fallback: number): number;
  int(key: string): number | undefined;
  float(key: string, fallback: number): number;
  float(key: string): number | undefined;
  bool(key: string, fallback: boolean): boolean;
  bool(key: string): boolean | undefined;
}

/** One event of a batch; each field is read from the batch when asked for. */
export class Event {
  /** The body: a view into the batch, emptied when the call returns (copy with slice() to keep it longer). */
  readonly body: Uint8Array;
  /** The body as UTF-8 text (throws TypeError if it is not). */
  text(): string;
  /** The body parsed as JSON (throws SyntaxError if it is not). */
  json(): any;
  readonly sequenceNumber: number;
  readonly offset: string;
  /** When Event Hubs accepted the event, milliseconds since the Unix epoch (UTC). */
  readonly enqueuedTimeMs: number;
  readonly partitionKey: string | undefined;
  readonly contentType: string | undefined;
  readonly correlationId: string | undefined;
  readonly messageId: string | undefined;
  readonly properties: Record<string, PropertyValue>;
  property(name: string): PropertyValue | undefined;
}

/** A batch of consecutive events of one partition. */
export class Batch implements Iterable<Event> {
  readonly length: number;
  at(index: number): Event | undefined;
  [Symbol.iterator](): Iterator<Event>;
}

/** What a plugin class may define; `handle` or `handleBatch` is required. */
export interface Plugin {
  /** May be async (e.g. to await `fetch`): the host waits for the Promise before it checkpoints. */
  handle?(ctx: Context, event: Event): void | Promise<void>;
  /** Takes the whole batch; a thrown Retry/Reject may carry `index` (the failing event). */
  handleBatch?(ctx: Context, batch: Batch): void | Promise<void>;
  opened?(ctx: Context): void;
  closed?(ctx: Context, reason: CloseReason): void;
  error?(ctx: Context, message: string): void;
}

/** Logging into the host's log, tagged with the plugin's name. */
export const log: {
  trace(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
};

/** Bytes the effects take: a Uint8Array, another typed array or DataView, an ArrayBuffer, or a
 * string (sent as UTF-8). */
export type BytesLike = Uint8Array | ArrayBufferView | ArrayBuffer | string;

/** The contract's own property value (`{ tag: "double", val: 1 }`, `{ tag: "uuid", val: "..." }`). */
export type WitPropertyValue = import("hubwasm:plugin/types@0.2.0").PropertyValue;

/** A property value to send: null/undefined (null), boolean, number (a safe integer is sent as
 * an integer, any other number as a double), bigint (64-bit integer), string, bytes, Date (a
 * timestamp), or the contract's own form for anything else (a double 1.0, a uuid). */
export type OutgoingPropertyValue =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | ArrayBufferView
  | ArrayBuffer
  | Date
  | WitPropertyValue;

/** How `emit` sends an event besides its body. */
export interface EmitOptions {
  /** Events with one partition key land in one partition of the output, in order. */
  partitionKey?: string;
  /** The MIME content type. */
  contentType?: string;
  /** Application properties, sent in this order: an object, a Map or `[name, value]` pairs. */
  properties?:
    | Record<string, OutgoingPropertyValue>
    | Map<string, OutgoingPropertyValue>
    | Array<[string, OutgoingPropertyValue]>;
}

/**
 * Queue an event with `body` for the output named `output` (`[[eventhub.output]]`), on behalf of
 * `source`: an Event of the current call or its sequence number. Sent after the call succeeds;
 * the source's checkpoint waits until the output acknowledged it (at least once; its message id
 * `<hub>/<partition>/<source seq>/<n>` is the same on a replay). Throws EmitError (a Reject) if
 * nothing was queued. An output the operator did not configure stops the call and pauses the
 * partition instead.
 */
export function emit(output: string, source: Event | number | bigint, body: BytesLike, options?: EmitOptions): void;

/** `emit` queued nothing: the source is not an event of this call, or a size limit was hit. */
export class EmitError extends Reject {
  readonly kind: "invalid-source" | "too-large";
  /** The source event's index in its batch, when the source was an Event. */
  readonly index?: number;
}

/** A state key or value longer than its limit (`limit` bytes); nothing was written. */
export class StateTooLarge extends Reject {
  readonly kind: "key-too-large" | "value-too-large";
  readonly limit: number;
}

/** The partition's state would exceed its `max_bytes`; nothing was written. */
export class StateFull extends Retry {}

/**
 * The partition's keyed state (`[eventhub.state]`), exactly once with the checkpoint: a call's
 * writes commit with the position of the batch's last event before the checkpoint moves, and are
 * discarded if the call fails. Reads see the committed state plus the call's own writes. Writes
 * throw StateTooLarge (a Reject) or StateFull (a Retry).
 */
export const state: {
  /** The value of `key`, or undefined if it is not set. */
  get(key: string): Uint8Array | undefined;
  /** Set `key` to `value` (a string is stored as UTF-8). */
  set(key: string, value: BytesLike): void;
  /** Remove `key` (nothing happens if it is not set). */
  delete(key: string): void;
  /** Every `[key, value]` whose key starts with `prefix`, in key order, read in pages of 1000. */
  scanPrefix(prefix: string): Generator<[string, Uint8Array], void, undefined>;
  /** The number `addU64` stored at `key` (8 bytes, little-endian): a number up to 2^53, a bigint
   * beyond; undefined if unset or not 8 bytes long. */
  getU64(key: string): number | bigint | undefined;
  /** Add `delta` (default 1, from 0 to 2^64-1) to the number at `key` (0 if unset), saturating
   * at 2^64-1; returns the new value (a number up to 2^53, a bigint beyond). */
  addU64(key: string, delta?: number | bigint): number | bigint;
};

/**
 * Whether `key` is new in the consumer group (not recorded in the last `ttlSeconds`), from
 * `[eventhub.dedupe]`'s store. Recorded when the call's batch commits, so a retried call sees
 * its keys as new again; within one call a second `firstSeen` of a key is false. A fraction of a
 * second counts as a whole one; capped at 2^32-1.
 */
export function firstSeen(key: string, ttlSeconds: number): boolean;

/** Make a class the plugin; export the result: `export const { lifecycle, batchHandler } = plugin(P)`. */
export function plugin(pluginClass: new (config: Config) => Plugin): {
  lifecycle: typeof import("hubwasm:plugin/lifecycle@0.2.0");
  batchHandler: typeof import("hubwasm:plugin/batch-handler@0.2.0");
};
