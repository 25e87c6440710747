// {{name}}: a hubwasm plugin in JavaScript.
//
// Build: hubwasm plugin build .
// Test:  hubwasm plugin test {{wasm}} --events events/sample.jsonl
import { plugin, log, Reject } from "./hubwasm/index.js";

class Plugin {
  constructor(config) {
    // `hubwasm run` passes [eventhub.plugin_config]; `plugin test` passes --config k=v.
    this.minValue = config.int("min_value", 0);
    this.kept = 0;
  }

  handle(ctx, event) {
    let doc;
    try {
      doc = event.json();
    } catch (e) {
      // Poison: retrying will not help. The host dead-letters it (or halts).
      throw new Reject(`not JSON: ${e.message}`);
    }
    if (Number.isInteger(doc?.value) && doc.value >= this.minValue) this.kept++;
    // Returning lets the host checkpoint past the event. For a transient failure (a service
    // down), throw new Retry("why", { afterMs: 1000 }).
  }

  closed(ctx, reason) {
    log.info("{{name}} summary", { partition: ctx.partitionId, kept: this.kept });
  }
}

export const { lifecycle, batchHandler } = plugin(Plugin);
