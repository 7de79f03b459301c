"""`newsalert match`: run a watchlist over articles offline, the dry run for rule authors."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from services.cli.article_files import BadRecord, read_articles
from services.matcher.alerts import match_record
from services.matcher.engine.loading import parse_watchlist
from services.matcher.engine.matcher import Matcher


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `match` subcommand."""
    parser = subparsers.add_parser(
        "match",
        help="match a watchlist against articles offline",
        description="Print one JSON line per (rule, article) match. Exit 2 when the "
        "watchlist is invalid, with every error on stderr.",
    )
    parser.add_argument("--rules", required=True, help="watchlist file (YAML or JSON)")
    parser.add_argument(
        "--input",
        required=True,
        help="JSONL or JSON array of articles, a folder of plain-text articles, or - for stdin",
    )
    parser.add_argument("--output", help="write matches here instead of stdout")
    parser.add_argument("--tenant", default="default", help="tenant when the file names none")
    parser.add_argument("--summary", action="store_true", help="print matches per rule to stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Match and print; 0 on success, 2 for an invalid watchlist or an unreadable input."""
    try:
        watchlist = Path(args.rules).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"{args.rules}: cannot read the watchlist: {exc}\n")
        return 2
    if args.input != "-" and not Path(args.input).exists():
        sys.stderr.write(f"{args.input}: no such file or folder\n")
        return 2
    loaded = parse_watchlist(watchlist, args.tenant)
    matcher, compile_errors = Matcher.build((loaded.tenant, r) for r in loaded.rules)
    errors = loaded.errors + compile_errors
    if errors:
        for error in errors:
            sys.stderr.write(f"{args.rules}: {error}\n")
        return 2
    out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    counts: Counter[str] = Counter()
    articles = bad = 0
    try:
        for item in read_articles(args.input):
            if isinstance(item, BadRecord):
                bad += 1
                sys.stderr.write(f"skipped {item.where}: {item.reason}\n")
                continue
            articles += 1
            for match in matcher.match(item).matches:
                counts[match.rule_id] += 1
                out.write(match_record(match, item.article_id).model_dump_json() + "\n")
    except OSError as exc:
        sys.stderr.write(f"{args.input}: cannot read: {exc}\n")
        return 2
    finally:
        if out is not sys.stdout:
            out.close()
    if args.summary:
        sys.stderr.write(f"{articles} articles, {bad} skipped, {sum(counts.values())} matches\n")
        width = max((len(r.id) for r in loaded.rules), default=4)
        for rule in loaded.rules:
            sys.stderr.write(f"  {rule.id:<{width}}  {counts[rule.id]:>7}\n")
    return 0
