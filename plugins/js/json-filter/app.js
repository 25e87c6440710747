// json-filter in JavaScript: the same semantics and config as the Rust json-filter.
//
// Keeps the seed's events whose `value` lies in [min_value, max_value], counting kept and
// dropped events; a body that is not a seed event is rejected (poison). A seed event is a UTF-8
// JSON object with string `event_id`, `timestamp` and `data` and integer `message_id` and
// `value` (no fraction or exponent, within 64 bits); other fields are ignored; one of those five
// given twice, or nesting deeper than 127 levels, is not.
//
// Config: `min_value` (integer, default 50), `max_value` (integer, optional). The parsing lives
// in seed.js.
import { plugin, log, Reject } from "../hubwasm/index.js";
import { seedValue } from "./seed.js";

class JsonFilter {
  constructor(config) {
    config.int("min_value"); // validates: an integer within 64 bits
    config.int("max_value");
    this.min = BigInt(config.get("min_value", "50"));
    this.max = config.has("max_value") ? BigInt(config.get("max_value")) : undefined;
    this.kept = 0;
    this.dropped = 0;
  }

  handle(ctx, event) {
    let value;
    try {
      value = seedValue(event.body);
    } catch (e) {
      throw new Reject(`body is not a seed event: ${e.message}`);
    }
    if (value >= this.min && (this.max === undefined || value <= this.max)) this.kept++;
    else this.dropped++;
  }

  closed(ctx, reason) {
    log.info("json-filter summary", { partition: ctx.partitionId, kept: this.kept, dropped: this.dropped });
  }
}

export const { lifecycle, batchHandler } = plugin(JsonFilter);
