"""enrich-http in Python: the same semantics and config as the Rust enrich-http.

POSTs each event's body to an HTTP endpoint (with the event's content type, if set) through
`hubwasm.http` (wasi:http) and forwards the answer. A 2xx answer is logged (sequence number,
status and the first 200 bytes of the response body) and, if `output` is set, the response body
is emitted to that output on behalf of the event, with the response's content type and the
event's partition key. Any other status, or no answer, is a retryable failure naming the status
or the wasi:http error code (e.g. `HTTP-request-denied` when the host does not allow the origin)
and the URL.

The host refuses every request except to the origins the operator lists in
`allowed_outbound_hosts`, and cuts a request at the plugin's call timeout.

Config: `url` (required: http:// or https:// URL to POST to), `output` (optional: the name of an
output configured for the event hub in `[[eventhub.output]]`).
"""

from typing import Optional

import hubwasm

# How much of a response body goes into a log record or an error message.
PREVIEW = 200
EXAMPLE = "e.g. `https://enrich.example.com/v1/lookup`"


def preview(body: bytes) -> str:
    return body[:PREVIEW].decode("utf-8", "replace")


@hubwasm.plugin
class EnrichHttp:
    def __init__(self, config: hubwasm.Config):
        url = (config.str("url") or "").strip()
        if not url:
            raise hubwasm.ConfigError(
                "config `url` is required: set it to the http:// or https:// URL to POST each "
                f"event to, {EXAMPLE}"
            )
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.split("/")[0]:
            raise hubwasm.ConfigError(
                f"config `url` = `{url}` is invalid: expected an http:// or https:// URL with a "
                f"host, {EXAMPLE}"
            )
        self.url = url
        self.output: Optional[str] = (config.str("output") or "").strip() or None

    def handle(self, ctx: hubwasm.Context, event: hubwasm.Event) -> None:
        try:
            response = hubwasm.http.post(self.url, event.body, content_type=event.content_type)
        except hubwasm.HttpError as e:
            raise hubwasm.Retry(f"POST {self.url} failed: {e.code}") from None
        if not response.ok:
            raise hubwasm.Retry(
                f"POST {self.url} answered HTTP {response.status}: {preview(response.body)}"
            )
        hubwasm.log.info(
            "enrich-http response",
            seq=event.sequence_number,
            status=response.status,
            body=preview(response.body),
        )
        if self.output is not None:
            hubwasm.emit(
                self.output,
                event,
                response.body,
                partition_key=event.partition_key,
                content_type=response.header("content-type"),
            )
