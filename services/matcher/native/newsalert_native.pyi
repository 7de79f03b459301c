"""The matcher worker's hot path, in Rust (src/lib.rs): types for mypy."""

from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from schemas.watchlist import WatchlistRule

T = TypeVar("T")

class CompiledRule:
    """One compiled rule: its identity and what the core needs of it (src/lib.rs `Rule`)."""

    tenant: str
    rule: WatchlistRule
    version: str
    def __init__(
        self,
        tenant: str,
        rule: WatchlistRule,
        version: str,
        plan: object,  # a plan of services/matcher/engine/plan.py
        trigger: Sequence[str] | None,
        keys: list[str],
        outright: bool,
        languages: list[str],
        sources: list[str],
    ) -> None: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def languages(self) -> frozenset[str]: ...
    @property
    def sources(self) -> tuple[str, ...]: ...

class RuleCompiler:
    """The native fast path of compile.py (src/compile.rs)."""

    def __init__(self, ascii_table: str, stems: StemCache) -> None: ...
    def compile(self, rules: Sequence[tuple[str, WatchlistRule]]) -> list[CompiledRule | None]:
        """Each (tenant, rule) compiled, or None where compile.py must compile it."""
    def compile_into(
        self,
        rules: dict[tuple[str, str], CompiledRule],
        upserts: Iterable[tuple[str, WatchlistRule]],
        fallback: Callable[[str, WatchlistRule], CompiledRule | T],
        threads: int | None = None,
    ) -> list[T]:
        """Compile the changed upserts into `rules`; the errors `fallback` returned."""

class StemCache:
    """token -> stem, memoised; `stem` computes one on a miss."""

    def __init__(self, stem: Callable[[str], str], max_entries: int = 500_000) -> None: ...
    def stem(self, token: str) -> str: ...
    def __len__(self) -> int: ...

class Scan:
    """The literal hits of one article."""

    def evidence(self, index: int) -> list[tuple[int, int, int]]: ...

Tokens = str | tuple[Sequence[int], Sequence[int]]
"""A field's tokens: its translated text (runs of non-spaces), or their starts and ends."""

class EvidenceWriter:
    """One article's evidence as the JSON fragment an alert carries (src/quote.rs)."""

    def __init__(
        self,
        texts: tuple[str, str],
        tokens: tuple[Tokens, Tokens],
        field_names: tuple[str, str],
        context: int,
    ) -> None: ...
    def json(self, scan: Scan, index: int) -> str: ...

class RecordBatch:
    """A Kafka record batch (v2, uncompressed) for aiokafka's `send_batch` (src/records.rs)."""

    def __init__(
        self,
        keys: list[bytes | None],
        values: list[bytes | None],
        max_bytes: int,
        timestamp_ms: int,
    ) -> None: ...
    def record_count(self) -> int: ...
    def size(self) -> int: ...
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def _set_producer_state(
        self, producer_id: int, producer_epoch: int, base_sequence: int
    ) -> None: ...
    def _build(self) -> bytes: ...

class StoryPostings:
    """Band and passage keys -> the `cap` most recent story entries holding each
    (src/postings.rs); entries are ordered by `at_us`, then `article_id`."""

    def __init__(self, cap: int) -> None: ...
    def add(
        self,
        handle: int,
        entry: Any,
        at_us: int,
        article_id: str,
        bands: array[int],
        passages: array[int],
    ) -> None: ...
    def remove(self, handle: int) -> None: ...
    def lookup(self, bands: array[int], passages: array[int]) -> list[Any]: ...
    def heap_bytes(self) -> int: ...
    def __len__(self) -> int: ...

class Core:
    """A ruleset ready to scan articles."""

    def __init__(
        self, rules: list[CompiledRule], max_tokens: int = 500_000, threads: int | None = None
    ) -> None: ...
    @property
    def literal_count(self) -> int: ...
    @property
    def uses_stems(self) -> bool: ...
    def scan(
        self,
        title: str,
        body: str,
        stems: StemCache | None,
        language: str | None,
        domain: str | None,
    ) -> tuple[Scan, list[int], int, int]: ...

def shingle_hashes(fields: list[str], words: int) -> bytes:
    """Sorted distinct CRC-32 hashes of each field's word shingles, as `array("I")` bytes
    (src/shingles.rs)."""

def band_keys(hashes: array[int], bins: int, bands: int, rows: int) -> bytes:
    """LSH band keys of the one-permutation MinHash signature of ascending `hashes`, as
    `array("Q")` bytes."""

def passages(hashes: array[int], sample: int) -> bytes:
    """The hashes divisible by `sample`, as `array("I")` bytes."""

def shared_hashes(a: array[int], b: array[int], limit: int) -> tuple[int, int, int]:
    """Hashes below `limit` common to two ascending arrays, and each one's count below it."""

def write_alerts(
    evidence: EvidenceWriter,
    scan: Scan,
    indices: list[int],
    rules: Sequence[object],  # alerts.py RuleParts: its `fields` and `id_prefix` are read
    first_of_story: list[bool],
    article_id: bytes,
    frame: tuple[str, str, str, str],
) -> tuple[list[bytes], list[str]]:
    """The value and id of each match's alert (src/alerts.rs; alerts.py `_write` defines it)."""

def pick(items: list[T], indices: list[int]) -> list[T]:
    """`[items[i] for i in indices]`, each item prefetched before any is used (src/pick.rs)."""

def token_offsets(text: str) -> tuple[list[int], list[int]]:
    """`[start, end)` code point offsets of each run of non-space characters (src/tokens.rs)."""
