"""`newsalert rules apply | list | get | delete`: watchlist rules through the ingest API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from services.cli.api_client import ApiClient, RequestRefused, describe_detail, path_part
from services.cli.api_options import api_options, fail, print_json, run_with_client, table

PROG = "newsalert rules"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `rules` command group."""
    parser = subparsers.add_parser(
        "rules",
        help="publish, list, read and delete watchlist rules through the ingest API",
        description="Manage your tenant's watchlist rules through the ingest API. Exit status: "
        "0 done, 1 the API could not be reached or refused the key, 2 the API refused the "
        "request (an invalid watchlist, an unknown rule).",
    )
    actions = parser.add_subparsers(dest="rules_action", required=True, metavar="ACTION")
    common = api_options()

    apply = actions.add_parser(
        "apply",
        parents=[common],
        help="publish a watchlist file: every rule valid, or none published",
        description="Publish the rules of a watchlist file (YAML, or JSON by its .json "
        "suffix; - reads stdin). The API checks every rule first: when one is invalid "
        "nothing is published and every error is listed with its position (exit 2).",
    )
    apply.add_argument("watchlist", metavar="WATCHLIST", help="watchlist file, or - for stdin")
    apply.add_argument(
        "--prune", action="store_true", help="also delete your rules that the file does not hold"
    )
    apply.set_defaults(handler=_apply)

    listing = actions.add_parser("list", parents=[common], help="list your rules")
    listing.set_defaults(handler=_list)

    get = actions.add_parser("get", parents=[common], help="show one rule (as watchlist YAML)")
    get.add_argument("rule_id", metavar="ID")
    get.set_defaults(handler=_get)

    delete = actions.add_parser("delete", parents=[common], help="delete one rule")
    delete.add_argument("rule_id", metavar="ID")
    delete.set_defaults(handler=_delete)


def _apply(args: argparse.Namespace) -> int:
    name = "<stdin>" if args.watchlist == "-" else args.watchlist
    try:
        body = _read_stdin() if args.watchlist == "-" else Path(name).read_bytes()
    except OSError as exc:
        return fail(PROG, f"{name}: cannot read the watchlist: {exc.strerror or exc}", code=2)
    is_json = name.lower().endswith(".json")

    def apply(client: ApiClient) -> int:
        try:
            applied = client.call(
                "POST",
                "/v1/watchlists:apply",
                body=body,
                content_type="application/json" if is_json else "application/yaml",
                query={"prune": "true"} if args.prune else None,
            )
        except RequestRefused as exc:
            for line in describe_detail(exc.detail):
                sys.stderr.write(f"{name}: {line}\n")
            return fail(PROG, f"{name}: refused ({exc.status}): no rule was published", code=2)
        if args.json:
            print_json(applied)
            return 0
        outcomes = ("created", "updated", "unchanged", "deleted")
        rows = [[rule_id, outcome] for outcome in outcomes for rule_id in applied[outcome]]
        print(
            f"watchlist {name} applied for tenant {applied['tenant']}: "
            + ", ".join(f"{len(applied[o])} {o}" for o in outcomes)
        )
        if rows:
            print(table(["RULE", "OUTCOME"], rows))
        return 0

    return run_with_client(PROG, args, apply)


def _read_stdin() -> bytes:
    binary = getattr(sys.stdin, "buffer", None)
    if binary is not None:
        data: bytes = binary.read()
        return data
    return sys.stdin.read().encode("utf-8")


def _list(args: argparse.Namespace) -> int:
    def show(client: ApiClient) -> int:
        records: list[dict[str, Any]] = client.call("GET", "/v1/rules")
        if args.json:
            print_json(records)
            return 0
        if not records:
            print("no rules")
            return 0
        rows = [
            [
                str(r["rule"]["id"]),
                str(r["rule"].get("severity", "")),
                ",".join(r["rule"].get("tags") or []),
                str(r.get("version", "")),
                str(r.get("updated_at", "")),
                str(r["rule"].get("name", "")),
            ]
            for r in sorted(records, key=lambda r: str(r["rule"]["id"]))
        ]
        print(table(["ID", "SEVERITY", "TAGS", "VERSION", "UPDATED", "NAME"], rows))
        return 0

    return run_with_client(PROG, args, show)


def _get(args: argparse.Namespace) -> int:
    def show(client: ApiClient) -> int:
        record: dict[str, Any] = client.call("GET", f"/v1/rules/{path_part(args.rule_id)}")
        if args.json:
            print_json(record)
            return 0
        rule = {k: v for k, v in record["rule"].items() if v not in (None, [], "")}
        print(
            f"# tenant {record.get('tenant')}, version {record.get('version')}, "
            f"updated {record.get('updated_at')}"
        )
        sys.stdout.write(yaml.safe_dump([rule], sort_keys=False, allow_unicode=True))
        return 0

    return run_with_client(PROG, args, show)


def _delete(args: argparse.Namespace) -> int:
    def delete(client: ApiClient) -> int:
        client.call("DELETE", f"/v1/rules/{path_part(args.rule_id)}")
        if args.json:
            print_json({"deleted": args.rule_id})
        else:
            print(f"deleted rule {args.rule_id}")
        return 0

    return run_with_client(PROG, args, delete)
