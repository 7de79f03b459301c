"""Write the JSON Schema of every contract to schemas/json/, or check it is up to date.

python -m schemas.export          # rewrite the files
python -m schemas.export --check  # exit 1 when a file differs from the models
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.alert import Alert, MatchRecord
from schemas.api import (
    ArticleReceipt,
    BatchReceipt,
    SubscriptionCreated,
    SubscriptionView,
    WatchlistApplied,
)
from schemas.article import Article, ArticleIn, RejectedRecord
from schemas.delivery import DeadLetter, DeliveryAttempt, DeliveryTask
from schemas.health import EndpointStatus
from schemas.replay import ReplayAccepted, ReplayIn, ReplayRequest
from schemas.story import StoryRecord
from schemas.subscription import Subscription, SubscriptionIn
from schemas.watchlist import RuleRecord, Watchlist, WatchlistRule
from schemas.webhook import AlertBatchMessage, AlertMessage

CONTRACTS: tuple[type[BaseModel], ...] = (
    Article,
    ArticleIn,
    RejectedRecord,
    Watchlist,
    WatchlistRule,
    RuleRecord,
    Alert,
    MatchRecord,
    Subscription,
    SubscriptionIn,
    DeliveryAttempt,
    DeliveryTask,
    DeadLetter,
    EndpointStatus,
    StoryRecord,
    ReplayIn,
    ReplayRequest,
    ReplayAccepted,
    ArticleReceipt,
    BatchReceipt,
    SubscriptionView,
    SubscriptionCreated,
    WatchlistApplied,
    AlertMessage,
    AlertBatchMessage,
)

JSON_DIR = Path(__file__).parent / "json"


def _file_name(model: type[BaseModel]) -> str:
    name = model.__name__
    snake = "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
    return f"{snake}.schema.json"


def render(model: type[BaseModel]) -> str:
    """The model's JSON Schema as the exact text checked in."""
    schema = model.model_json_schema(mode="serialization")
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """Names of schema files that are missing, differ from the models, or are left over."""
    expected = {_file_name(m): render(m) for m in CONTRACTS}
    stale = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text("utf-8") != text
    ]
    stale += sorted(p.name for p in directory.glob("*.schema.json") if p.name not in expected)
    return stale


def write_all(directory: Path = JSON_DIR) -> None:
    """Rewrite every schema file and remove ones no model produces."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = {_file_name(m): render(m) for m in CONTRACTS}
    for name, text in expected.items():
        (directory / name).write_text(text, "utf-8")
    for path in directory.glob("*.schema.json"):
        if path.name not in expected:
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    """CLI entry: write the files, or with --check report drift and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when files drift")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            sys.stderr.write(
                "schemas/json is out of date (run `make schemas`): " + ", ".join(stale) + "\n"
            )
            return 1
        return 0
    write_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
