"""Shared helpers for the official-SDK scripts the Rust tests run against the embedded endpoint.

Every script:
  * takes `--conn "<connection string>"` (with `UseDevelopmentEmulator=true` and `EntityPath`),
  * uses only the official `azure-eventhub` SDK (pure-python pyamqp transport),
  * prints exactly one JSON object as the last line of stdout,
  * exits 0 on success, non-zero with a one-line reason on stderr on failure,
  * is bounded in time by a watchdog (the SDK itself waits forever for some replies, e.g. a
    `$management` response or a `$cbs` attach that never comes).
"""
import argparse
import datetime
import json
import logging
import os
import sys
import threading
import traceback
import uuid

# Exit codes: 0 ok, 1 SDK/server error, 2 expectation not met (e.g. fewer events than expected),
# 3 watchdog fired (something hung), 4 bad arguments.
EXIT_ERROR = 1
EXIT_UNMET = 2
EXIT_HUNG = 3


def parser(description, deadline=55.0):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--conn", required=True, help="connection string (with EntityPath and UseDevelopmentEmulator=true)")
    p.add_argument(
        "--deadline",
        type=float,
        default=deadline,
        help=f"hard limit in seconds for the whole script; the watchdog exits with code {EXIT_HUNG} "
        + (f"(default {deadline:.0f})" if deadline else "(default: --timeout + 12, at most 58)"),
    )
    p.add_argument(
        "--retry-total",
        type=int,
        default=None,
        help="the SDK's retry_total (default: the SDK's own default, 3)",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="log the SDK's AMQP frames (logging_enable=True) to stderr",
    )
    return p


def client_kwargs(args):
    """Keyword arguments for `from_connection_string` that the common options ask for."""
    kwargs = {}
    if args.retry_total is not None:
        kwargs["retry_total"] = args.retry_total
    if args.trace:
        kwargs["logging_enable"] = True
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger("azure.eventhub")
        root.setLevel(logging.DEBUG)
        root.addHandler(handler)
    return kwargs


def start_watchdog(seconds, what="script"):
    """Exit the process (code 3) if it is still running after `seconds`."""

    def fire():
        print(f"watchdog: {what} still running after {seconds:.0f}s; giving up", file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_HUNG)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def jsonable(value):
    """Turn SDK values (bytes, datetimes, UUIDs, nested containers) into JSON-friendly ones."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return value


def describe(exc):
    """`Type: message` of an exception, with the SDK's inner AMQP error if there is one."""
    text = f"{type(exc).__name__}: {exc}"
    inner = getattr(exc, "details", None)
    if isinstance(inner, BaseException) and inner is not exc and str(inner) not in text:
        text += f" (inner {type(inner).__name__}: {inner})"
    return text


def done(result):
    """Print the result as one JSON line and exit 0."""
    print(json.dumps(jsonable(result)))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def fail(message, code=EXIT_ERROR, result=None):
    """Print a reason on stderr (and optionally a JSON result on stdout) and exit non-zero."""
    if result is not None:
        print(json.dumps(jsonable(result)))
        sys.stdout.flush()
    print(message, file=sys.stderr)
    sys.stderr.flush()
    os._exit(code)


def run(main):
    """Run `main()`; any exception becomes a clear one-line stderr message and exit code 1."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:  # pylint: disable=broad-except
        traceback.print_exc(file=sys.stderr)
        fail(describe(exc))
