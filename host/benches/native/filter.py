"""Native baseline of the languages benchmark: the Python json-filter's own code
(plugins/python/json-filter/seed.py) on CPython, over the bodies the plugin gets.

Usage: python filter.py BODIES.jsonl ROUNDS MIN_VALUE  ->  {"ns_per_event": best round}
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../plugins/python/json-filter"))
from seed import seed_value  # noqa: E402


def main():
    path, rounds, min_value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path, "rb") as f:
        bodies = [line for line in f.read().split(b"\n") if line]
    best = None
    for _ in range(rounds):
        kept = dropped = 0
        started = time.perf_counter_ns()
        for body in bodies:
            try:
                value = seed_value(body)
            except (ValueError, UnicodeError, RecursionError):
                continue
            if value >= min_value:
                kept += 1
            else:
                dropped += 1
        took = time.perf_counter_ns() - started
        assert kept + dropped == len(bodies)
        best = took if best is None else min(best, took)
    print(json.dumps({"ns_per_event": best / len(bodies), "python": sys.version.split()[0]}))


main()
