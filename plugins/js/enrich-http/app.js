// enrich-http in JavaScript: the same semantics and config as the Rust enrich-http.
//
// POSTs each event's body to an HTTP endpoint (with the event's content type, if set) with
// `fetch` (wasi:http) and forwards the answer. A 2xx answer is logged (sequence number, status and
// the first 200 bytes of the response body) and, if `output` is set, the response body is emitted
// to that output on behalf of the event, with the response's content type and the event's
// partition key. Any other status, or no answer, is a retryable failure naming the status or the
// error and the URL.
//
// The host refuses every request except to the origins the operator lists in
// `allowed_outbound_hosts`, and cuts a request at the plugin's call timeout. `handle` is async:
// the host waits for it before it checkpoints.
//
// Config: `url` (required: http:// or https:// URL to POST to), `output` (optional: the name of
// an output configured for the event hub in `[[eventhub.output]]`).
import { plugin, emit, log, ConfigError, Retry } from "../hubwasm/index.js";

// How much of a response body goes into a log record or an error message.
const PREVIEW = 200;
const EXAMPLE = "e.g. `https://enrich.example.com/v1/lookup`";
const utf8 = new TextDecoder("utf-8");

function preview(body) {
  return utf8.decode(body.subarray(0, PREVIEW));
}

class EnrichHttp {
  constructor(config) {
    const url = (config.string("url") ?? "").trim();
    if (!url) {
      throw new ConfigError(`config \`url\` is required: set it to the http:// or https:// URL to POST each event to, ${EXAMPLE}`);
    }
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !["http:", "https:"].includes(parsed.protocol) || !parsed.host) {
      throw new ConfigError(`config \`url\` = \`${url}\` is invalid: expected an http:// or https:// URL with a host, ${EXAMPLE}`);
    }
    this.url = url;
    this.output = (config.string("output") ?? "").trim() || undefined;
  }

  async handle(ctx, event) {
    const headers = event.contentType ? { "content-type": event.contentType } : {};
    let response, body;
    try {
      response = await fetch(this.url, { method: "POST", body: event.body, headers });
      body = new Uint8Array(await response.arrayBuffer());
    } catch (e) {
      throw new Retry(`POST ${this.url} failed: ${e?.message ?? e}`);
    }
    if (!response.ok) {
      throw new Retry(`POST ${this.url} answered HTTP ${response.status}: ${preview(body)}`);
    }
    log.info("enrich-http response", {
      seq: event.sequenceNumber,
      status: response.status,
      body: preview(body),
    });
    if (this.output !== undefined) {
      emit(this.output, event, body, {
        partitionKey: event.partitionKey,
        contentType: response.headers.get("content-type") ?? undefined,
      });
    }
  }
}

export const { lifecycle, batchHandler } = plugin(EnrichHttp);
