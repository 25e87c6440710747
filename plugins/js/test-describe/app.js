// test-describe in JavaScript: rejects the event at index `at` of each batch with a message
// describing every field the guest library read (the Rust test-describe's format), so tests can
// check that the host's batch layout and this library agree. Config: `at` (default 0).
import { plugin, Reject } from "../hubwasm/index.js";

const debug = (value) => (value === undefined ? "None" : `Some("${value}")`);

function describeValue(key, value) {
  if (value === null) return `${key}=null`;
  if (typeof value === "boolean") return `${key}=bool:${value}`;
  if (typeof value === "bigint") return `${key}=int:${value}`;
  if (typeof value === "number") return isDouble(key) ? `${key}=double:${value}` : `${key}=int:${value}`;
  if (ArrayBuffer.isView(value)) return `${key}=binary:[${Array.from(value).join(", ")}]`;
  return `${key}=text:${value}`;
}

// JavaScript numbers do not say whether they were integers or doubles on the wire; the test
// names its double properties `ratio*`.
const isDouble = (key) => key.startsWith("ratio");

function describe(ctx, event) {
  const properties = Object.entries(event.properties)
    .map(([k, v]) => describeValue(k, v))
    .join(",");
  return (
    `partition=${ctx.namespace}/${ctx.eventHub}/${ctx.consumerGroup}/${ctx.partitionId} ` +
    `seq=${event.sequenceNumber} offset=${event.offset} enqueued=${event.enqueuedTimeMs} ` +
    `body=${new TextDecoder().decode(event.body)} key=${debug(event.partitionKey)} ` +
    `content_type=${debug(event.contentType)} correlation_id=${debug(event.correlationId)} ` +
    `message_id=${debug(event.messageId)} properties=[${properties}]`
  );
}

class Describe {
  constructor(config) {
    this.at = config.int("at", 0);
  }
  handleBatch(ctx, batch) {
    if (this.at < batch.length) {
      const error = new Reject(describe(ctx, batch.at(this.at)));
      error.index = this.at;
      throw error;
    }
  }
}

export const { lifecycle, batchHandler } = plugin(Describe);
