// {{name}}: a hubwasm plugin in JavaScript.
//
// Build: hubwasm plugin build .
// Test:  hubwasm plugin test {{wasm}} --events events/sample.jsonl
import { plugin, log, Reject } from "./hubwasm/index.js";

// The JSDoc types come from hubwasm/index.d.ts and the contract's declarations in
// hubwasm/types (jsconfig.json turns checking on in editors and for `tsc -p jsconfig.json`).
/** @typedef {import("./hubwasm/index.js").Context} Context */
/** @typedef {import("./hubwasm/index.js").Event} Event */
/** @typedef {import("./hubwasm/index.js").CloseReason} CloseReason */
/** @typedef {import("./hubwasm/index.js").Plugin} PluginShape */

/** @implements {PluginShape} */
class Plugin {
  /** @param {import("./hubwasm/index.js").Config} config */
  constructor(config) {
    // `hubwasm run` passes [eventhub.plugin_config]; `plugin test` passes --config k=v.
    this.minValue = config.int("min_value", 0);
    this.kept = 0;
  }

  /** @param {Context} ctx @param {Event} event */
  handle(ctx, event) {
    let doc;
    try {
      doc = event.json();
    } catch (e) {
      // Poison: retrying will not help. The host dead-letters it (or halts).
      throw new Reject(`not JSON: ${e}`);
    }
    if (Number.isInteger(doc?.value) && doc.value >= this.minValue) this.kept++;
    // Returning lets the host checkpoint past the event. For a transient failure (a service
    // down), throw new Retry("why", { afterMs: 1000 }).
  }

  /** @param {Context} ctx @param {CloseReason} reason */
  closed(ctx, reason) {
    log.info("{{name}} summary", { partition: ctx.partitionId, kept: this.kept });
  }
}

export const { lifecycle, batchHandler } = plugin(Plugin);
