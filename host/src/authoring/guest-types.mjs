// Writes TypeScript declarations for a guest of a WIT world: jco's guest types, run through
// jco-transpile's API because the `jco types` command of jco 1.35 cannot open files (its
// WASI shim starts with no preopened directories; this gives it `/`).
//
// node guest-types.mjs NODE_DIR WIT_DIR WORLD OUT_DIR
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { join, dirname, resolve } from "node:path";
import { mkdirSync, writeFileSync } from "node:fs";

const [nodeDir, wit, world, out] = process.argv.slice(2);
// Resolve the packages as the generator itself does, so the preopens reach its copy of the
// shim; npm may hoist jco-transpile or nest it under componentize-js or jco.
const modules = join(resolve(nodeDir), "node_modules");
const jcoMain = ["", "@bytecodealliance/componentize-js/", "@bytecodealliance/jco/"]
  .map((from) => {
    try {
      return createRequire(join(modules, from)).resolve("@bytecodealliance/jco-transpile");
    } catch {
      return undefined;
    }
  })
  .find(Boolean);
if (!jcoMain) throw new Error(`@bytecodealliance/jco-transpile is not installed in ${modules}`);
const jco = dirname(dirname(jcoMain)); // <package>/dist/index.js
const shim = createRequire(jcoMain).resolve("@bytecodealliance/preview2-shim/filesystem");
const load = (path) => import(pathToFileURL(path).href);
(await load(shim))._setPreopens({ "/": "/" });
const { generateGuestTypes } = await load(join(jco, "dist/index.js"));
const files = await generateGuestTypes(resolve(wit), { worldName: world, outDir: "" });
for (const [name, bytes] of Object.entries(files).sort()) {
  const path = join(out, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  console.log(name);
}
