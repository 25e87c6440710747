// What a seed event is: the json-filter's parsing, shared by the plugin (app.js) and the native
// baseline of the languages benchmark (host/benches/native/filter.mjs). No host imports: plain
// JavaScript.
//
// A seed event is a UTF-8 JSON object with string `event_id`, `timestamp` and `data` and integer
// `message_id` and `value` (no fraction or exponent, within 64 bits); other fields are ignored;
// one of those five given twice, or nesting deeper than 127 levels, is not.

const STRINGS = ["event_id", "timestamp", "data"];
const INTEGERS = ["message_id", "value"];
const KEYS = new Set([...STRINGS, ...INTEGERS]);
// serde_json reads `-0` as a float (-0.0), so it is not an integer here either.
const INTEGER_TOKEN = /^(0|-?[1-9][0-9]*)$/;
const I64_MIN = -(2n ** 63n), I64_MAX = 2n ** 63n - 1n;
const MAX_DEPTH = 127; // deeper nesting is not a seed event
// ignoreBOM keeps a byte order mark in the text, so JSON.parse refuses it as serde does.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// Walk the text outside strings: depth past MAX_DEPTH, and the keys of the top-level object.
function scan(text, wantKeys) {
  let depth = 0, keys = [], i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (wantKeys && depth === 1) {
        let k = j + 1;
        while (" \t\r\n".includes(text[k])) k++;
        if (text[k] === ":") keys.push(JSON.parse(text.slice(i, j + 1)));
      }
      i = j + 1;
      continue;
    }
    if (ch === "[" || ch === "{") {
      if (++depth > MAX_DEPTH) return { tooDeep: true, keys };
    } else if (ch === "]" || ch === "}") depth--;
    i++;
  }
  return { tooDeep: false, keys };
}

function count(text, needle) {
  let n = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) n++;
  return n;
}

// Every quoted occurrence of the five keys, in one pass.
const QUOTED_KEYS = /"(?:event_id|message_id|timestamp|value|data)"/g;
// A key and the number token after it (read at the key's only occurrence).
const NUMBER_AFTER_KEY = /"[a-z_]+"[ \t\r\n]*:[ \t\r\n]*(-?[0-9][0-9.eE+-]*)/y;

// The event's `value` (a Number, or a BigInt beyond 15 digits; both compare exactly with
// BigInt bounds), or throws saying why the body is not a seed event.
export function seedValue(body) {
  const text = strictUtf8.decode(body);
  // Escapes can spell a key (`"val\u0075e"`) or a lone surrogate: those bodies take the slow path.
  const escapes = text.includes("\\u");
  const quoted = text.match(QUOTED_KEYS) ?? [];
  const repeated = escapes || new Set(quoted).size !== quoted.length;
  const nesting = count(text, "[") + count(text, "{");
  if (nesting > MAX_DEPTH || repeated) {
    const { tooDeep, keys } = scan(text, repeated);
    if (tooDeep) throw new Error("recursion limit exceeded");
    // Duplicate keys vanish in JSON.parse: look at the raw keys.
    const seen = new Set();
    for (const k of keys) {
      if (KEYS.has(k) && seen.has(k)) throw new Error(`duplicate field \`${k}\``);
      seen.add(k);
    }
  }
  if (/^[ \t\r\n]*(.)/s.exec(text)?.[1] !== "{") throw new Error("not a JSON object");
  let doc, sources;
  if (!repeated) {
    // Fast path: each key occurs once, so an integer's raw token follows its key.
    doc = JSON.parse(text);
    sources = {};
    for (const key of INTEGERS) {
      const at = text.indexOf(`"${key}"`);
      if (at === -1) continue;
      NUMBER_AFTER_KEY.lastIndex = at;
      sources[key] = NUMBER_AFTER_KEY.exec(text)?.[1];
    }
  } else {
    // The raw tokens through the reviver's source text, per holder object.
    const byHolder = new WeakMap();
    doc = JSON.parse(text, function (key, value, context) {
      if (typeof value === "number" && INTEGERS.includes(key)) {
        let own = byHolder.get(this);
        if (!own) byHolder.set(this, (own = {}));
        own[key] = context?.source;
      }
      return value;
    });
    sources = byHolder.get(doc) ?? {};
  }
  for (const key of STRINGS) {
    const v = doc[key];
    if (typeof v !== "string" || (escapes && LONE_SURROGATE.test(v))) {
      throw new Error(Object.hasOwn(doc, key) ? `\`${key}\` is not a string` : `missing field \`${key}\``);
    }
  }
  let value;
  for (const key of INTEGERS) {
    const source = sources[key];
    if (typeof doc[key] !== "number" || !INTEGER_TOKEN.test(source ?? "")) {
      throw new Error(Object.hasOwn(doc, key) ? `\`${key}\` is not a 64-bit integer` : `missing field \`${key}\``);
    }
    let n;
    if (source.length <= 15) {
      n = Number(source);
    } else {
      n = BigInt(source);
      if (n < I64_MIN || n > I64_MAX) throw new Error(`\`${key}\` is not a 64-bit integer`);
    }
    if (key === "value") value = n;
  }
  return value;
}
