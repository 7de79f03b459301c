"""Errors the engine reports about rules. No I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuleError:
    """Why one rule was refused or could not be evaluated.

    `where` names the part of the rule (`query`, `any[2]`, `none[0]`, a schema field), and
    `position` is the 1-based character position inside it when there is one.
    """

    tenant: str
    rule_id: str
    where: str
    message: str
    position: int | None = None

    def __str__(self) -> str:
        at = f" at position {self.position}" if self.position is not None else ""
        return f"rule {self.tenant}/{self.rule_id}: {self.where}{at}: {self.message}"


class RuleCompileError(ValueError):
    """A rule that cannot be compiled; carries the `RuleError` that says why."""

    def __init__(self, error: RuleError) -> None:
        super().__init__(str(error))
        self.error = error
