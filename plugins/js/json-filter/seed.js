// What a seed event is: the json-filter's parsing, shared by the plugin (app.js) and the native
// baseline of the languages benchmark (host/benches/native/filter.mjs). No host imports: plain
// JavaScript.
//
// A seed event is a UTF-8 JSON object with string `event_id`, `timestamp` and `data` and integer
// `message_id` and `value` (no fraction or exponent, within 64 bits); other fields are ignored;
// one of those five given twice, or nesting deeper than 127 levels, is not.

const INTEGERS = ["message_id", "value"];
const KEYS = new Set(["event_id", "timestamp", "data", ...INTEGERS]);
// serde_json reads `-0` as a float (-0.0), so it is not an integer here either.
const INTEGER_TOKEN = /^(0|-?[1-9][0-9]*)$/;
const I64_MIN = -(2n ** 63n), I64_MAX = 2n ** 63n - 1n;
const MAX_DEPTH = 127; // deeper nesting is not a seed event
// The integer token after a key: blanks, `:`, blanks, sign, digits, and what would follow a
// fraction or an exponent.
const TOKEN_AFTER_KEY = /[ \t\r\n]*:[ \t\r\n]*(-?)([0-9]+)([.eE]?)/y;
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

// Opening brackets anywhere (strings too): a bound on the depth.
function brackets(text) {
  return count(text, "[") + count(text, "{");
}

// Integer field `key` of `doc`, checked against its raw token: digits only, no fraction or
// exponent, `-0` excluded, within 64 bits (a Number, or a BigInt beyond 15 digits). `sources`
// has the raw tokens when the slow path read them; otherwise the key occurs once in `text`,
// ending at `afterKey`, and its token follows it.
function integerField(doc, key, afterKey, text, sources) {
  const v = doc[key];
  if (typeof v !== "number") {
    throw new Error(Object.hasOwn(doc, key) ? `\`${key}\` is not a 64-bit integer` : `missing field \`${key}\``);
  }
  let source;
  if (sources !== undefined) {
    source = sources[key];
  } else {
    // JSON.parse accepted the text, so after the key come blanks, `:`, blanks and the number;
    // one sticky regex reads it (StarlingMonkey interprets, and a loop over chars costs more).
    TOKEN_AFTER_KEY.lastIndex = afterKey;
    const m = TOKEN_AFTER_KEY.exec(text);
    // A fraction or an exponent makes a float for serde, and so does `-0`.
    if (m === null || m[3] !== "" || (m[1] !== "" && m[2] === "0")) {
      throw new Error(`\`${key}\` is not a 64-bit integer`);
    }
    if (m[2].length <= 15) return v;
    source = m[1] + m[2];
  }
  if (!INTEGER_TOKEN.test(source ?? "")) throw new Error(`\`${key}\` is not a 64-bit integer`);
  if (source.length <= 15) return Number(source);
  const n = BigInt(source);
  if (n < I64_MIN || n > I64_MAX) throw new Error(`\`${key}\` is not a 64-bit integer`);
  return n;
}

function stringField(doc, key, escapes) {
  const v = doc[key];
  if (typeof v !== "string" || (escapes && LONE_SURROGATE.test(v))) {
    throw new Error(Object.hasOwn(doc, key) ? `\`${key}\` is not a string` : `missing field \`${key}\``);
  }
}

// The event's `value` (a Number, or a BigInt beyond 15 digits; both compare exactly with
// BigInt bounds), or throws saying why the body is not a seed event.
export function seedValue(body) {
  const text = strictUtf8.decode(body);
  // Escapes can spell a key (`"val\u0075e"`) or a lone surrogate: those bodies take the slow
  // path, as do repeated keys and deep nesting.
  const escapes = text.includes("\\u");
  // A quoted key more than once anywhere (as a key or inside a value)? Unrolled and inline: a
  // loop or a call costs more than the searches in StarlingMonkey's interpreter. Where the two
  // integer keys are is kept for reading their tokens (the fast path, where each is once).
  let atMessageId = -1, atValue = -1, at;
  const repeated =
    escapes ||
    ((at = text.indexOf('"event_id"')) !== -1 && text.indexOf('"event_id"', at + 1) !== -1) ||
    ((atMessageId = text.indexOf('"message_id"')) !== -1 && text.indexOf('"message_id"', atMessageId + 1) !== -1) ||
    ((at = text.indexOf('"timestamp"')) !== -1 && text.indexOf('"timestamp"', at + 1) !== -1) ||
    ((atValue = text.indexOf('"value"')) !== -1 && text.indexOf('"value"', atValue + 1) !== -1) ||
    ((at = text.indexOf('"data"')) !== -1 && text.indexOf('"data"', at + 1) !== -1);
  let doc, sources;
  let parsed = false;
  if (!repeated && (text.length < 2 * (MAX_DEPTH + 1) || brackets(text) <= MAX_DEPTH)) {
    // Fast path: each key occurs once, so an integer's raw token follows its key. JSON nested
    // deeper than MAX_DEPTH is at least 2 * (MAX_DEPTH + 1) long, so a shorter text JSON.parse
    // accepts is shallow enough; one it refuses may be too deep, which the slow path says.
    try {
      doc = JSON.parse(text);
      parsed = true;
    } catch (e) {
      if (brackets(text) <= MAX_DEPTH) throw e;
    }
  }
  if (!parsed) {
    const { tooDeep, keys } = scan(text, repeated);
    if (tooDeep) throw new Error("recursion limit exceeded");
    // Duplicate keys vanish in JSON.parse: look at the raw keys.
    const seen = new Set();
    for (const k of keys) {
      if (KEYS.has(k) && seen.has(k)) throw new Error(`duplicate field \`${k}\``);
      seen.add(k);
    }
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
  // Only `{` starts a text JSON.parse makes a plain object of (a byte order mark fails it).
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error("not a JSON object");
  // Checked inline first, since a call costs in StarlingMonkey's interpreter; the calls say
  // what is wrong.
  if (typeof doc.event_id !== "string" || typeof doc.timestamp !== "string" || typeof doc.data !== "string" || escapes) {
    stringField(doc, "event_id", escapes);
    stringField(doc, "timestamp", escapes);
    stringField(doc, "data", escapes);
  }
  integerField(doc, "message_id", atMessageId + '"message_id"'.length, text, sources);
  return integerField(doc, "value", atValue + '"value"'.length, text, sources);
}
