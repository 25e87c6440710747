"""Expect the endpoint to refuse a connection string with a wrong key (or an expired SAS) with an
authentication error, both for get_eventhub_properties ($management) and for a send.

The SDK raises azure.eventhub.exceptions.AuthenticationError when the $cbs put-token reply carries
status-code 401 (pyamqp TokenAuthFailure: "CBS Token authentication failed. Status code: 401
Description: ..."). Exits 0 only if every attempt raised AuthenticationError.

Output: {"error_type": ..., "message": ...   (of the get_eventhub_properties attempt)
         "attempts": {"get_eventhub_properties": {"error_type", "message"}, "send": {...}}}
"""
from azure.eventhub import EventData, EventHubProducerClient
from azure.eventhub.exceptions import AuthenticationError

from eh_common import client_kwargs, fail, done, parser, run, start_watchdog


def attempt(args, action):
    kwargs = client_kwargs(args)
    kwargs.setdefault("retry_total", 0)
    client = EventHubProducerClient.from_connection_string(args.conn, **kwargs)
    try:
        with client:
            action(client)
    except Exception as e:  # pylint: disable=broad-except
        return {"error_type": type(e).__name__, "message": str(e)}
    return {"error_type": None, "message": "accepted"}


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--skip-send", action="store_true", help="only try get_eventhub_properties")
    args = p.parse_args()
    start_watchdog(args.deadline, "eh_wrong_key")

    attempts = {"get_eventhub_properties": attempt(args, lambda c: c.get_eventhub_properties())}
    if not args.skip_send:
        attempts["send"] = attempt(args, lambda c: c.send_batch([EventData("should be refused")]))
    first = attempts["get_eventhub_properties"]
    result = {"error_type": first["error_type"], "message": first["message"], "attempts": attempts}
    wrong = {k: v for k, v in attempts.items() if v["error_type"] != AuthenticationError.__name__}
    if wrong:
        reasons = "; ".join(
            f"{k}: " + ("the wrong credentials were accepted" if v["error_type"] is None
                        else f"expected AuthenticationError, got {v['error_type']}: {v['message']}")
            for k, v in wrong.items()
        )
        fail(reasons, result=result)
    done(result)


run(main)
