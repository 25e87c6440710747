// count-by-key in JavaScript: the same semantics and config as the Rust count-by-key.
//
// Counts events per value of a top-level JSON field, in the partition's keyed state. For every
// event whose body is a JSON object with the field `field` holding a string or a number, adds 1
// to the state key `count/<value>` (a u64 stored as 8 little-endian bytes; a string's unescaped
// text, a number's text as written, e.g. `count/sensor-7`, `count/42`, `count/1.50`). Events
// without the field, with another kind of value, or whose body is not a JSON object are handled
// without counting. The first occurrence of a repeated field counts. State is exactly once with
// the checkpoint, so the counts survive restarts and takeovers without double counting; the
// event hub needs an `[eventhub.state]` store.
//
// Config: `field` (required: the top-level field to count by, e.g. `device`).
import { plugin, state, ConfigError } from "../hubwasm/index.js";

// Prefix of every state key this plugin writes.
const PREFIX = "count/";
// serde_json's nesting limit, which the Rust plugin's parser applies.
const MAX_DEPTH = 127;
// ignoreBOM keeps a byte order mark in the text, so JSON.parse refuses it as serde does.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
// `"\ud800"` is valid JSON to JSON.parse, not to serde_json (nor UTF-8).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const NUMBER = /-?[0-9][0-9.eE+-]*/y;

/** @param {string | undefined} ch */
const isBlank = (ch) => ch === " " || ch === "\t" || ch === "\n" || ch === "\r";

// The end of the string token starting at `i` (the index of its closing quote).
/** @param {string} text @param {number} i */
function stringEnd(text, i) {
  let j = i + 1;
  while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
  return j;
}

// The text of the top-level `field` of a JSON object `body`, if it holds a string or a number.
// JSON.parse checks the body; one walk outside strings then finds the top-level keys (JSON.parse
// keeps the last of a repeated key, the Rust plugin the first) and the nesting depth.
/** @param {Uint8Array} body @param {string} field @returns {string | undefined} */
function fieldText(body, field) {
  let text, doc;
  try {
    text = strictUtf8.decode(body);
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return undefined;
  const escapes = text.includes("\\u"); // only escapes can make a lone surrogate
  let depth = 0, at;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      const end = stringEnd(text, i);
      if (depth === 1) {
        let k = end + 1;
        while (isBlank(text[k])) k++;
        if (text[k] === ":") {
          const raw = text.slice(i + 1, end);
          const key = raw.includes("\\") ? JSON.parse(text.slice(i, end + 1)) : raw;
          // The Rust parser refuses such a key, so the whole body.
          if (escapes && LONE_SURROGATE.test(key)) return undefined;
          if (at === undefined && key === field) {
            at = k + 1;
            while (isBlank(text[at])) at++;
          }
        }
      }
      i = end;
    } else if (ch === "{" || ch === "[") {
      if (++depth > MAX_DEPTH) return undefined;
    } else if (ch === "}" || ch === "]") {
      depth--;
    }
  }
  if (at === undefined) return undefined;
  if (text[at] === '"') {
    const value = JSON.parse(text.slice(at, stringEnd(text, at) + 1));
    return escapes && LONE_SURROGATE.test(value) ? undefined : value;
  }
  NUMBER.lastIndex = at;
  return NUMBER.exec(text)?.[0]; // as written; true, false, null, an object or an array: none
}

class CountByKey {
  /** @param {import("../hubwasm/index.js").Config} config */
  constructor(config) {
    const field = config.get("field");
    if (!field) {
      throw new ConfigError(
        "config `field` is required: set it to the top-level JSON field whose values to count, e.g. `device`",
      );
    }
    this.field = field;
  }

  /** @param {import("../hubwasm/index.js").Context} ctx @param {import("../hubwasm/index.js").Event} event */
  handle(ctx, event) {
    const value = fieldText(event.body, this.field);
    if (value === undefined) return;
    // A key over the host's limit is this event's fault: StateTooLarge is a Reject.
    state.addU64(PREFIX + value);
  }
}

export const { lifecycle, batchHandler } = plugin(CountByKey);
