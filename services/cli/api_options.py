"""What the commands over the ingest API share: their options, settings, errors and tables."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from services.cli.api_client import ApiClient, ApiError
from services.common.settings import ClientSettings

# What a bearer token may hold (RFC 6750 b64token); anything else cannot be a key, and a line
# break in it would forge a header.
_KEY = re.compile(r"^[A-Za-z0-9_\-.~+/=]+$")


class ConfigError(Exception):
    """The API URL or key is missing or malformed (exit 2)."""


def api_options() -> argparse.ArgumentParser:
    """A parent parser with --api-url, --api-key and --json, for every command over the API."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("ingest API")
    group.add_argument(
        "--api-url",
        metavar="URL",
        help="the ingest API (default: NEWSALERT_API_URL, else http://127.0.0.1:8080)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key (default: NEWSALERT_API_KEY; prefer the variable: other users of the "
        "machine can read command lines)",
    )
    parent.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parent


def client_settings(api_url: str | None, api_key: str | None) -> ClientSettings:
    """NEWSALERT_API_URL / NEWSALERT_API_KEY, overridden by the flags given.

    Raises:
        ConfigError: the URL is malformed, or there is no usable key.
    """
    overrides: dict[str, Any] = {}
    if api_url is not None:
        overrides["api_url"] = api_url
    if api_key is not None:
        overrides["api_key"] = api_key
    try:
        settings = ClientSettings(**overrides)
    except ValidationError as exc:
        problems = {str(e["loc"][0]) for e in exc.errors(include_input=False)}
        if "api_url" in problems:
            raise ConfigError(
                "the API URL (--api-url or NEWSALERT_API_URL) must look like "
                "http://host:port or https://host/path"
            ) from None
        raise ConfigError(f"invalid client settings: {', '.join(sorted(problems))}") from None
    key = settings.api_key.get_secret_value()
    if not key:
        raise ConfigError(
            "no API key: set NEWSALERT_API_KEY (or pass --api-key); "
            "`newsalert keys new --tenant T` makes one"
        )
    if not _KEY.match(key):
        raise ConfigError(
            "the API key holds characters no API key has (spaces, line breaks, quotes or "
            "non-ASCII): check NEWSALERT_API_KEY or --api-key"
        )
    return settings


def run_with_client(prog: str, args: argparse.Namespace, action: Callable[[ApiClient], int]) -> int:
    """Open a client from the options and run `action`; API errors become their exit code."""
    try:
        settings = client_settings(args.api_url, args.api_key)
    except ConfigError as exc:
        return fail(prog, str(exc), code=2)
    try:
        with ApiClient(settings.api_url, settings.api_key.get_secret_value()) as client:
            return action(client)
    except ApiError as exc:
        return report(prog, exc)


def fail(prog: str, message: str, lines: Sequence[str] = (), code: int = 1) -> int:
    """Print `prog: message` and indented detail lines on stderr; return `code`."""
    sys.stderr.write(f"{prog}: {message}\n")
    for line in lines:
        sys.stderr.write(f"  {line}\n")
    return code


def report(prog: str, error: ApiError) -> int:
    """Print an API error on stderr; return its exit code."""
    return fail(prog, error.message, error.lines, error.exit_code)


def print_json(value: Any) -> None:
    """Pretty JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, headers first; no trailing spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
