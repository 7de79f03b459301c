"""Watchlist files (YAML or JSON) -> validated rules, one error list for everything wrong.

No I/O beyond what the caller hands in: this module parses text. A rule that is invalid is
reported with its id (or its index when it has no usable id) and left out; the other rules of
the file are unaffected (rules.md section 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.common import TenantId
from schemas.watchlist import WatchlistRule
from services.matcher.engine.compile import rule_ast
from services.matcher.engine.errors import RuleCompileError, RuleError

_TENANT = "tenant"


@dataclass(frozen=True, slots=True)
class LoadedWatchlist:
    """The valid rules of a watchlist file and an error for each invalid one."""

    tenant: str
    rules: list[WatchlistRule]
    errors: list[RuleError]


def _parse_document(text: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return json.loads(text)
    # safe_load: a watchlist is data; YAML tags that build Python objects are refused.
    return yaml.safe_load(text)


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    found = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "rule"
        found.append((where, item["msg"]))
    return found


def parse_watchlist(text: str, default_tenant: str = "default") -> LoadedWatchlist:
    """Parse and validate a watchlist document, compiling each rule's query to check it.

    Never raises for bad content: a document that cannot be read at all yields one error for
    the rule id `*`.
    """
    try:
        document = _parse_document(text)
    except (ValueError, yaml.YAMLError) as exc:
        return LoadedWatchlist(
            default_tenant,
            [],
            [RuleError(default_tenant, "*", "document", f"not valid YAML or JSON: {exc}")],
        )
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        return LoadedWatchlist(
            default_tenant,
            [],
            [RuleError(default_tenant, "*", "document", "expected a mapping with a `rules` list")],
        )
    tenant = document.get(_TENANT, default_tenant)
    errors: list[RuleError] = []
    try:
        tenant = _validate_tenant(tenant)
    except ValueError as exc:
        return LoadedWatchlist(
            default_tenant, [], [RuleError(default_tenant, "*", _TENANT, str(exc))]
        )
    unknown = sorted(set(document) - {_TENANT, "rules"})
    if unknown:
        errors.append(RuleError(tenant, "*", "document", f"unknown keys: {', '.join(unknown)}"))
    rules: list[WatchlistRule] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["rules"]):
        label = _label(raw, index)
        try:
            rule = WatchlistRule.model_validate(raw)
        except ValidationError as exc:
            errors += [RuleError(tenant, label, where, msg) for where, msg in _describe(exc)]
            continue
        if rule.id in seen:
            errors.append(RuleError(tenant, rule.id, "id", "appears more than once"))
            continue
        seen.add(rule.id)
        try:
            rule_ast(tenant, rule)
        except RuleCompileError as exc:
            errors.append(exc.error)
            continue
        rules.append(rule)
    return LoadedWatchlist(tenant, rules, errors)


def _label(raw: object, index: int) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"]:
        return str(raw["id"])[:64]
    return f"#{index}"


def _validate_tenant(value: object) -> str:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(TenantId).validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"invalid tenant {value!r}: {exc.errors()[0]['msg']}") from exc
