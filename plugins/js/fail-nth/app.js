// fail-nth in JavaScript: fails the event with one sequence number, succeeds on all others.
//
// Config: `fail_at` (required, sequence number), `kind` = `retryable` (default) | `rejected` |
// `throw` (an unexpected exception: a stack in the host's log and a crash), `retry_after_ms`
// (optional), `times` (optional: fail only the first N attempts of that event within this
// instance, then succeed; default: always fail), `async` = `true` to decide in an async
// handler, after an `await` (the same verdicts, through the library's asynchronous path).
import { plugin, ConfigError, Reject, Retry } from "../hubwasm/index.js";

class FailNth {
  constructor(config) {
    this.kind = config.string("kind", "retryable");
    if (!["retryable", "rejected", "throw"].includes(this.kind)) {
      throw new ConfigError(`config \`kind\` = \`${this.kind}\` is invalid: use \`retryable\`, \`rejected\` or \`throw\``);
    }
    config.require("fail_at");
    this.failAt = config.int("fail_at");
    this.retryAfterMs = config.int("retry_after_ms");
    this.times = config.int("times");
    this.attempts = 0;
    if (config.bool("async", false)) {
      const decide = this.decide.bind(this);
      this.handle = async (ctx, event) => {
        await Promise.resolve();
        decide(ctx, event);
      };
    }
  }

  handle(ctx, event) {
    this.decide(ctx, event);
  }

  decide(ctx, event) {
    if (event.sequenceNumber !== this.failAt) return;
    this.attempts++;
    if (this.times !== undefined && this.attempts > this.times) return;
    const message = `configured to fail at sequence number ${this.failAt}`;
    if (this.kind === "rejected") throw new Reject(message);
    if (this.kind === "throw") checkOrder(event.sequenceNumber);
    throw new Retry(message, { afterMs: this.retryAfterMs });
  }
}

function checkOrder(sequenceNumber) {
  // A plugin bug, as the host sees one: an exception nobody catches.
  throw new RangeError(`unexpected event ${sequenceNumber}`);
}

export const { lifecycle, batchHandler } = plugin(FailNth);
