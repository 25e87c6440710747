"""Shared helpers for the official-SDK scripts the Rust tests run against the embedded endpoint."""
import argparse
import json
import sys


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--conn", required=True, help="connection string (with EntityPath)")
    return p


def done(result):
    """Print the result as one JSON line and exit 0."""
    print(json.dumps(result, default=str))
    sys.stdout.flush()
    sys.exit(0)
