"""Building blocks shared by every contract: id patterns, severities, tenants. No I/O."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic import AwareDatetime as PydanticAwareDatetime

SCHEMA_VERSION: Literal[1] = 1

# rules.md section 1: rule ids, and (by the same rule) tenant and subscription ids.
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{1,64}$")]
TenantId = Slug


# pydantic's own aware datetime: checked in its Rust core, not by a Python validator called
# for every timestamp (three per alert; measured at 7% of the notifier's time). Its error
# reads "Input should have timezone info", under the field's name.
AwareDatetime = PydanticAwareDatetime


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # JSON escapes like "\ud800" decode to lone surrogates, which no UTF-8 consumer
        # downstream (Kafka clients, webhook receivers) can read.
        raise ValueError(f"text holds a lone surrogate at character {exc.start}") from exc
    return value


CleanText = Annotated[str, AfterValidator(_clean_text)]


class Severity(StrEnum):
    """How much an alert matters; ordered from `info` (lowest) to `critical`."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical, for `at least` comparisons."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = list(Severity)


class Contract(BaseModel):
    """Base of every payload that crosses a process boundary: strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)
