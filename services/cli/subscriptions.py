"""`newsalert subscriptions create | list | get | delete | rotate-secret`: webhook subscriptions.

A subscription's signing secret is shown once, when it is created or rotated: this command
prints it then (on stdout, so it can be captured) and never again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from schemas.common import Severity
from services.cli.api_client import ApiClient, path_part
from services.cli.api_options import api_options, fail, print_json, run_with_client, table

PROG = "newsalert subscriptions"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `subscriptions` command group."""
    parser = subparsers.add_parser(
        "subscriptions",
        help="create, list, read, delete webhook subscriptions and rotate their secrets",
        description="Manage your tenant's webhook subscriptions through the ingest API. Exit "
        "status: 0 done, 1 the API could not be reached or refused the key, 2 the API "
        "refused the request (a refused URL, an unknown subscription).",
    )
    actions = parser.add_subparsers(dest="subscriptions_action", required=True, metavar="ACTION")
    common = api_options()

    create = actions.add_parser(
        "create",
        parents=[common],
        help="create a subscription and print its signing secret (shown once)",
        description="Create a webhook subscription; its signing secret is printed once. "
        "Filters left out match every alert.",
    )
    create.add_argument("subscription_id", metavar="ID", help="[a-z0-9][a-z0-9._-]{0,63}")
    create.add_argument("--url", required=True, help="the webhook endpoint (https://...)")
    create.add_argument("--description", default="", help="a note for people")
    create.add_argument(
        "--rule-ids",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="only alerts of these rules (space- or comma-separated)",
    )
    create.add_argument(
        "--tags",
        action="extend",
        nargs="+",
        default=[],
        metavar="TAG",
        help="only alerts of rules with one of these tags (space- or comma-separated)",
    )
    create.add_argument(
        "--min-severity",
        choices=[s.value for s in Severity],
        default=Severity.INFO.value,
        help="only alerts at least this severe (default info)",
    )
    create.add_argument(
        "--every-alert",
        action="store_true",
        help="deliver every alert, not only the first of each story",
    )
    create.add_argument(
        "--alerts-per-request",
        type=int,
        default=1,
        metavar="N",
        help="up to N alerts in one request, as an alert.batch message (default 1: each alert "
        "its own alert.created message)",
    )
    create.add_argument("--disabled", action="store_true", help="create it paused")
    create.add_argument(
        "--replace",
        action="store_true",
        help="replace the settings of an existing subscription (its secrets are kept)",
    )
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", parents=[common], help="list your subscriptions")
    listing.set_defaults(handler=_list)

    for name, handler, help_text in (
        ("get", _get, "show one subscription"),
        ("delete", _delete, "delete one subscription"),
        (
            "rotate-secret",
            _rotate,
            "make a new signing secret and print it (shown once); the old ones keep signing "
            "until their overlap ends",
        ),
    ):
        action = actions.add_parser(name, parents=[common], help=help_text)
        action.add_argument("subscription_id", metavar="ID")
        action.set_defaults(handler=handler)


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def subscription_body(args: argparse.Namespace) -> dict[str, Any]:
    """The SubscriptionIn body the `create` options describe."""
    return {
        "url": args.url,
        "description": args.description,
        "enabled": not args.disabled,
        "alerts_per_request": args.alerts_per_request,
        "filter": {
            "rule_ids": _split(args.rule_ids),
            "tags": _split(args.tags),
            "min_severity": args.min_severity,
            "first_of_story_only": not args.every_alert,
        },
    }


def _path(subscription_id: str) -> str:
    return f"/v1/subscriptions/{path_part(subscription_id)}"


def _print_secret(secret: str) -> None:
    print(f"secret: {secret}")
    sys.stderr.write(
        "store the secret now: it is not shown again (rotate-secret makes a new one)\n"
    )


def _create(args: argparse.Namespace) -> int:
    def create(client: ApiClient) -> int:
        path = _path(args.subscription_id)
        if not args.replace and client.send("GET", path).status == 200:
            return fail(
                PROG,
                f"subscription {args.subscription_id!r} already exists: add --replace to "
                "change its settings (its secrets are kept)",
                code=2,
            )
        answer = client.call("PUT", path, json_body=subscription_body(args))
        if args.json:
            print_json(answer)
            return 0
        if isinstance(answer, dict) and "secret" in answer:
            sub = answer["subscription"]
            print(f"created subscription {sub['id']} for tenant {sub['tenant']}: {sub['url']}")
            _print_secret(answer["secret"])
        else:
            print(f"replaced the settings of subscription {answer['id']}; its secrets are kept")
        return 0

    return run_with_client(PROG, args, create)


def _filter_text(flt: dict[str, Any]) -> str:
    parts = [f">= {flt.get('min_severity', 'info')}"]
    if flt.get("rule_ids"):
        parts.append("rules " + ",".join(flt["rule_ids"]))
    if flt.get("tags"):
        parts.append("tags " + ",".join(flt["tags"]))
    parts.append("first of story" if flt.get("first_of_story_only", True) else "every alert")
    return "; ".join(parts)


def _list(args: argparse.Namespace) -> int:
    def show(client: ApiClient) -> int:
        subs: list[dict[str, Any]] = client.call("GET", "/v1/subscriptions")
        if args.json:
            print_json(subs)
            return 0
        if not subs:
            print("no subscriptions")
            return 0
        rows = [
            [
                str(s["id"]),
                "yes" if s.get("enabled") else f"no ({s.get('disabled_reason') or 'paused'})",
                str(len(s.get("secrets") or [])),
                _filter_text(s.get("filter") or {}),
                str(s["url"]),
            ]
            for s in sorted(subs, key=lambda s: str(s["id"]))
        ]
        print(table(["ID", "ENABLED", "SECRETS", "FILTER", "URL"], rows))
        return 0

    return run_with_client(PROG, args, show)


def _describe(sub: dict[str, Any]) -> str:
    lines = [
        f"id:          {sub['id']}",
        f"tenant:      {sub.get('tenant')}",
        f"url:         {sub.get('url')}",
        f"description: {sub.get('description') or ''}",
        f"enabled:     {'yes' if sub.get('enabled') else 'no'}",
    ]
    if sub.get("disabled_reason"):
        lines.append(f"disabled:    {sub['disabled_reason']}")
    lines.append(f"filter:      {_filter_text(sub.get('filter') or {})}")
    per_request = sub.get("alerts_per_request", 1)
    lines.append(
        f"requests:    {'one alert each' if per_request == 1 else f'up to {per_request} alerts'}"
    )
    for secret in sub.get("secrets") or []:
        until = f", signs until {secret['expires_at']}" if secret.get("expires_at") else ""
        lines.append(
            f"secret:      {secret.get('prefix')} (created {secret.get('created_at')}{until})"
        )
    lines.append(f"created:     {sub.get('created_at')}")
    lines.append(f"updated:     {sub.get('updated_at')}")
    return "\n".join(line.rstrip() for line in lines)


def _get(args: argparse.Namespace) -> int:
    def show(client: ApiClient) -> int:
        sub = client.call("GET", _path(args.subscription_id))
        if args.json:
            print_json(sub)
        else:
            print(_describe(sub))
        return 0

    return run_with_client(PROG, args, show)


def _delete(args: argparse.Namespace) -> int:
    def delete(client: ApiClient) -> int:
        client.call("DELETE", _path(args.subscription_id))
        if args.json:
            print_json({"deleted": args.subscription_id})
        else:
            print(f"deleted subscription {args.subscription_id}")
        return 0

    return run_with_client(PROG, args, delete)


def _rotate(args: argparse.Namespace) -> int:
    def rotate(client: ApiClient) -> int:
        answer = client.call("POST", _path(args.subscription_id) + "/rotate-secret")
        if args.json:
            print_json(answer)
            return 0
        print(f"new signing secret for subscription {answer['subscription']['id']}")
        _print_secret(answer["secret"])
        for old in answer["subscription"].get("secrets") or []:
            if old.get("expires_at"):
                print(f"old secret {old.get('prefix')} keeps signing until {old['expires_at']}")
        return 0

    return run_with_client(PROG, args, rotate)
