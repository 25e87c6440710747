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
  /** The body: a view into the batch (copy with slice() to keep it beyond the call). */
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
  handle?(ctx: Context, event: Event): void;
  /** Takes the whole batch; a thrown Retry/Reject may carry `index` (the failing event). */
  handleBatch?(ctx: Context, batch: Batch): void;
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

/** Make a class the plugin; export the result: `export const { lifecycle, batchHandler } = plugin(P)`. */
export function plugin(pluginClass: new (config: Config) => Plugin): {
  lifecycle: typeof import("hubwasm:plugin/lifecycle@0.2.0");
  batchHandler: typeof import("hubwasm:plugin/batch-handler@0.2.0");
};
