// Native baseline of the languages benchmark: the JavaScript json-filter's own code
// (plugins/js/json-filter/seed.js) on Node, over the bodies the plugin gets.
//
// Usage: node --harmony-json-parse-with-source filter.mjs BODIES.jsonl ROUNDS MIN_VALUE
//   -> {"ns_per_event": best round}
// (Node 20 gives JSON.parse revivers the source text only with that flag; StarlingMonkey, the
// engine of componentize-js, always does.)
import { readFileSync } from "node:fs";
import { seedValue } from "../../../plugins/js/json-filter/seed.js";

const [path, rounds, minValue] = [process.argv[2], Number(process.argv[3]), BigInt(process.argv[4])];
const raw = readFileSync(path);
const bodies = [];
for (let start = 0; start < raw.length; ) {
  let end = raw.indexOf(10, start);
  if (end === -1) end = raw.length;
  if (end > start) bodies.push(new Uint8Array(raw.subarray(start, end)));
  start = end + 1;
}
let best = Infinity;
for (let r = 0; r < rounds; r++) {
  let kept = 0, dropped = 0;
  const started = process.hrtime.bigint();
  for (const body of bodies) {
    let value;
    try {
      value = seedValue(body);
    } catch {
      continue;
    }
    if (value >= minValue) kept++;
    else dropped++;
  }
  const took = Number(process.hrtime.bigint() - started);
  if (kept + dropped !== bodies.length) throw new Error("a seed event was rejected");
  best = Math.min(best, took);
}
console.log(JSON.stringify({ ns_per_event: best / bodies.length, node: process.version }));
