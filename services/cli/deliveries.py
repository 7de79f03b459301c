"""`newsalert deliveries list | replay`: dead letters, and delivering again."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from services.cli.api_client import ApiClient
from services.cli.api_options import api_options, fail, print_json, run_with_client, table

PROG = "newsalert deliveries"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `deliveries` command group."""
    parser = subparsers.add_parser(
        "deliveries",
        help="list dead letters and replay deliveries through the ingest API",
        description="Dead letters are alerts whose every delivery attempt failed. Replays "
        "deliver again with the same webhook-id and a fresh timestamp and signature. Exit "
        "status: 0 done, 1 the API could not be reached or refused the key, 2 it refused "
        "the request.",
    )
    actions = parser.add_subparsers(dest="deliveries_action", required=True, metavar="ACTION")
    common = api_options()

    listing = actions.add_parser("list", parents=[common], help="list dead letters")
    listing.add_argument("--subscription", help="only this subscription's")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    listing.set_defaults(handler=_list)

    replay = actions.add_parser(
        "replay",
        parents=[common],
        help="deliver one dead letter again, or every alert of a time range",
        description="Either --alert ID (one dead letter) or --since and --until (ISO 8601 "
        "with a time zone, e.g. 2026-11-30T08:00:00Z): every alert of the subscription's "
        "tenant in that range that its filter wants.",
    )
    replay.add_argument("--subscription", required=True, help="the subscription to deliver to")
    replay.add_argument("--alert", help="the alert id of a dead letter")
    replay.add_argument("--since", type=_timestamp, help="start of the range (inclusive)")
    replay.add_argument("--until", type=_timestamp, help="end of the range")
    replay.set_defaults(handler=_replay)


def _timestamp(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z): {text!r}")
    return when


def _list(args: argparse.Namespace) -> int:
    def show(client: ApiClient) -> int:
        query = {"limit": str(args.limit)}
        if args.subscription:
            query["subscription_id"] = args.subscription
        letters: list[dict[str, Any]] = client.call("GET", "/v1/dead-letters", query=query)
        if args.json:
            print_json(letters)
            return 0
        if not letters:
            print("no dead letters")
            return 0
        rows = [
            [
                str(letter["dead_at"]),
                str(letter["subscription_id"]),
                str(letter["alert"]["alert_id"]),
                str(len(letter["attempts"])),
                str(letter["reason"])[:60],
            ]
            for letter in letters
        ]
        print(table(["DEAD AT", "SUBSCRIPTION", "ALERT", "ATTEMPTS", "REASON"], rows))
        return 0

    return run_with_client(PROG, args, show)


def _replay(args: argparse.Namespace) -> int:
    ranged = args.since is not None or args.until is not None
    if (args.alert is None) == (not ranged) or (ranged and None in (args.since, args.until)):
        return fail(PROG, "give either --alert, or --since and --until", code=2)
    body: dict[str, Any] = {"subscription_id": args.subscription}
    if args.alert:
        body["alert_id"] = args.alert
    else:
        body["since"] = args.since.isoformat()
        body["until"] = args.until.isoformat()

    def replay(client: ApiClient) -> int:
        accepted = client.call("POST", "/v1/replays", json_body=body)
        if args.json:
            print_json(accepted)
        else:
            print(f"replay {accepted['replay_id']} queued for subscription {args.subscription}")
        return 0

    return run_with_client(PROG, args, replay)
