"""`newsalert keys new --tenant T`: a fresh API key, and the line the ingest service stores.

The service keeps only `tenant:sha256hex` (NEWSALERT_API_KEYS or NEWSALERT_API_KEYS_FILE);
the key itself is printed here once and stored nowhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from services.ingest.auth import new_key

PROG = "newsalert keys"
_TENANT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keys` command group."""
    parser = subparsers.add_parser(
        "keys",
        help="make API keys for the ingest API",
        description="Make API keys. The ingest service stores only their SHA-256 hashes.",
    )
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="print a fresh API key and its `tenant:sha256hex` line",
        description="Print a fresh API key (give it to the tenant; it is stored nowhere) and "
        "the `tenant:sha256hex` entry to add to NEWSALERT_API_KEYS (comma-separated) or to "
        "the NEWSALERT_API_KEYS_FILE file (one a line).",
    )
    new.add_argument("--tenant", required=True, help="the tenant the key acts for")
    new.add_argument("--json", action="store_true", help="print JSON: tenant, key, entry")
    new.set_defaults(handler=_new)


def key_entry(tenant: str, digest: str) -> str:
    """The `tenant:sha256hex` entry the ingest service reads."""
    return f"{tenant}:{digest}"


def _new(args: argparse.Namespace) -> int:
    if not _TENANT.match(args.tenant):
        sys.stderr.write(f"{PROG}: tenant {args.tenant!r} must match [a-z0-9][a-z0-9._-]{{0,63}}\n")
        return 2
    key, digest = new_key()
    entry = key_entry(args.tenant, digest)
    if args.json:
        print(json.dumps({"tenant": args.tenant, "key": key, "entry": entry}))
        return 0
    print(f"key:   {key}")
    print(f"entry: {entry}")
    sys.stderr.write(
        f"give the key to tenant {args.tenant!r} (clients send it as NEWSALERT_API_KEY); it "
        "is not stored anywhere.\nadd the entry to NEWSALERT_API_KEYS (comma-separated) or to "
        "the NEWSALERT_API_KEYS_FILE file, and restart ingest.\n"
    )
    return 0
