// Opens hubwasm's status page in headless Chromium (Debian's, driven by playwright-core),
// waits until it shows the host's partitions and a chart, saves a screenshot and prints what
// a person would see as JSON. Run by tests/host_run/admin.rs.
//
// node status_page.mjs URL SCREENSHOT  (NODE_PATH: where playwright-core is installed)
import { createRequire } from "node:module";
import { join } from "node:path";

const [url, screenshot] = process.argv.slice(2);
const require = createRequire(join(process.env.HUBWASM_TOOLS_NODE_DIR, "node_modules/"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: process.env.HUBWASM_CHROMIUM ?? "/usr/bin/chromium",
  // The flags a closed network needs (no background calls home), and root in a container.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(url);
  await page.waitForSelector("body[data-loaded=true]", { timeout: 20000 });
  // Charts need two samples; the page refreshes every two seconds.
  await page.waitForFunction(
    () => (document.querySelector("#rate-chart polyline")?.getAttribute("points") ?? "").split(" ").length >= 3,
    null,
    { timeout: 20000 },
  );
  const seen = await page.evaluate(() => ({
    instance: document.getElementById("instance").textContent,
    handled: document.getElementById("handled").textContent,
    partitions: [...document.querySelectorAll("#partitions tbody tr")].map((tr) =>
      [...tr.cells].map((c) => c.textContent),
    ),
    versions: [...document.querySelectorAll("#versions tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent)),
    swaps: [...document.querySelectorAll("#swap-history tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent)),
    ratePoints: document.querySelector("#rate-chart polyline").getAttribute("points").split(" ").length,
    ratePeak: document.getElementById("rate-max").textContent,
    error: document.getElementById("error").textContent,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...seen, errors }));
} finally {
  await browser.close();
}
