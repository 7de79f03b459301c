"""The `newsalert` command: one entry point, one module per subcommand group."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from services.cli import deliveries, ingest, kafka, keys, match, rules, subscriptions

# Each module contributes `register(subparsers)`; the handler it sets returns an exit code.
_GROUPS = (kafka, match, ingest, rules, subscriptions, keys, deliveries)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every subcommand included."""
    parser = argparse.ArgumentParser(
        prog="newsalert", description="Streaming news alerts: rules, matching, delivery."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code (0 ok, 1 failure, 2 bad input)."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
