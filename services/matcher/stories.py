"""Story grouping: syndicated copies and rewrites of one story share a story id. No I/O.

Comparing two articles
----------------------
An article is the set of its word 5-shingles (five consecutive tokens of the engine's own text
analysis, `normalize.analyze`, over the title and over the body), each hashed to 32 bits with
CRC-32 of its UTF-8 text: stable across processes and platforms, and fast. Two articles belong
to one story when, counting shingles exactly,

* the smaller one is at least half contained in the other (`copy_containment`): a syndicated
  copy under another headline, with or without a footer, or a short piece taken whole; or
* they share a passage of text: at least `passage_shared` shingles (about 55 words) making at
  least `passage_containment` of the smaller one. A rewrite that quotes whole paragraphs of
  another outlet's piece, such as the two seed articles (86 shared shingles, 19.8% of the
  shorter one, Jaccard 0.09), groups; two articles that share one background paragraph
  (in the BBC corpus, 43 shingles, 14.5%) do not.

Word 5-shingles are the usual choice for news: shorter ones match idioms between unrelated
articles ("at the end of the"), longer ones lose more of a rewrite to every edited word.

Finding candidates
------------------
Comparing a new article with every article of the window would not scale, so two indexes
propose candidates and the exact rule above decides; an index can only cost a missed group,
never a false merge.

* Near-copies, of any length: a 128-value MinHash signature, computed as one-permutation
  MinHash (each shingle hash falls in one of 128 bins by its top 7 bits and each bin keeps its
  least hash; an empty bin borrows from the next full bin, tagged with the distance). That
  costs one pass over the shingles instead of 128. LSH banding, 32 bands of 4 rows: articles
  with Jaccard 0.5 share a band with probability 0.87, 0.6: 0.99, 0.2: 0.05.
* Shared passages: one shingle in 8 (hash divisible by 8) is a passage fingerprint; a passage
  of 55 words holds about 6 of them, so an article sharing one with the new article is a
  candidate.

Each index key keeps its 32 most recent articles (by time, then article id), which bounds the
work per article when boilerplate or a much-syndicated story fills a key.

State
-----
`StoryIndex` holds the articles of the last `window` (72 h by default) before the newest time
it has seen; older articles are evicted, and a story ends when its last article does. For a
restart, every article has a `StoryRecord` (`StoryIndex.record`) to keep in a compacted
changelog; `restore` re-applies them, in any order, to the same index. Records of articles
evicted since can be deleted (`take_evicted`) or left to the topic's retention: `restore`
ignores records older than the window. `restore` is idempotent, so a worker may also keep
applying the records other workers write, to group articles it did not see itself.

Speed
-----
Shingling, band keys, passages and the overlap of two fingerprints run in the native core
(`newsalert_native`, services/matcher/native/src/shingles.rs), and cross into Python as
arrays, not a Python int per hash. `shingle_hashes`, `Fingerprint.signature` and
`reference_band_keys` here define the first two, and the tests hold the two sides equal.
The index of band and passage keys is native too (`newsalert_native.StoryPostings`,
src/postings.rs): an article's ~80 keys are filed, and looked up, in one call each. It holds
the entries and their order; every decision stays here.

A story's state (its article count and sources) is that of its latest article still held, so
an index rebuilt from records answers exactly as the original; a rule's claim to the first
alert of a story ends when the claiming article leaves the window. The matcher, per article:

    assigned = index.assign(article_id, source, received_at, title, body)
    for each (tenant, rule) that matched:
        first_of_story = index.first_for_rule(article_id, tenant, rule_id)
    changelog <- (article_id, index.record(article_id))
    changelog <- (gone, None) for gone in index.take_evicted()
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count, pairwise, repeat
from operator import attrgetter

import newsalert_native

from schemas.story import SHINGLE_HASH_SPACE, StoryRecord
from services.common.topics import record_key
from services.matcher.engine.normalize import analyze

SHINGLE_WORDS = 5
HASH_SPACE = SHINGLE_HASH_SPACE
BINS = 128
BIN_SHIFT = 25  # 32 - log2(BINS): a hash's top 7 bits choose its bin
BANDS = 32
ROWS = 4
PASSAGE_SAMPLE = 8  # hashes divisible by this are passage fingerprints
MAX_SHINGLES = 4096  # beyond this, the least hashes stand for the whole (a consistent sample)
BUCKET_CAP = 32  # most recent articles kept per index key
MAX_SOURCES = 64  # sources remembered per story
DEFAULT_WINDOW = timedelta(hours=72)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_MASK64 = (1 << 64) - 1
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5)

assert array("I").itemsize == 4, "array('I') must hold 32-bit unsigned integers"


def shingle_hashes(title: str, body: str, words: int = SHINGLE_WORDS) -> set[int]:
    """The 32-bit hashes of the word `words`-shingles of the title and of the body.

    A field shorter than `words` tokens is one shingle. Title and body are shingled apart, so
    another headline changes only the title's few shingles. The reference for the native
    `newsalert_native.shingle_hashes`, which `Fingerprint.of_text` uses.
    """
    hashes: set[int] = set()
    for text in (title, body):
        tokens = analyze(text).tokens
        if len(tokens) >= words:
            windows = zip(*(tokens[i:] for i in range(words)), strict=False)
            grams: Iterable[str] = map(" ".join, windows)
        elif tokens:
            grams = (" ".join(tokens),)
        else:
            continue
        hashes.update(map(zlib.crc32, map(str.encode, grams)))
    return hashes


@dataclass(frozen=True, slots=True, eq=False)
class Fingerprint:
    """An article's shingle hashes, sorted; at most MAX_SHINGLES of them.

    `limit` is HASH_SPACE when every hash is kept; otherwise every hash below `limit` is kept
    and none above, so two fingerprints compare exactly on the hashes below both limits.
    """

    hashes: array[int]
    limit: int = HASH_SPACE

    @classmethod
    def of(cls, hashes: Iterable[int], max_size: int = MAX_SHINGLES) -> Fingerprint:
        """The fingerprint of a set of shingle hashes."""
        return cls._capped(array("I", sorted(set(hashes))), max_size)

    @classmethod
    def _capped(cls, hashes: array[int], max_size: int) -> Fingerprint:
        limit = HASH_SPACE
        if len(hashes) > max_size:
            limit = hashes[max_size]
            del hashes[max_size:]
        return cls(hashes, limit)

    @classmethod
    def of_text(
        cls, title: str, body: str, scan_texts: tuple[str, str] | None = None
    ) -> Fingerprint:
        """The fingerprint of an article's title and body (`shingle_hashes`, natively).

        `scan_texts` are title and body as `analyze` leaves them (`TokenStream.scan_text`),
        when the caller has them already; they are worked out otherwise.
        """
        if scan_texts is None:
            scan_texts = (analyze(title).scan_text, analyze(body).scan_text)
        hashes = array("I", newsalert_native.shingle_hashes(list(scan_texts), SHINGLE_WORDS))
        return cls._capped(hashes, MAX_SHINGLES)

    def __len__(self) -> int:
        return len(self.hashes)

    def encode(self) -> str:
        """The hashes as base64 of big-endian 32-bit integers."""
        packed = array("I", self.hashes)
        if sys.byteorder == "little":
            packed.byteswap()
        return base64.b64encode(packed.tobytes()).decode("ascii")

    @classmethod
    def decode(cls, text: str, limit: int = HASH_SPACE) -> Fingerprint:
        """The inverse of `encode`."""
        raw = base64.b64decode(text, validate=True)
        if len(raw) % 4:
            raise ValueError("shingle hashes must be a whole number of 32-bit integers")
        hashes = array("I", raw)
        if sys.byteorder == "little":
            hashes.byteswap()
        if any(a >= b for a, b in pairwise(hashes)):
            raise ValueError("shingle hashes must be sorted and distinct")
        if hashes and hashes[-1] >= limit:
            raise ValueError("a shingle hash is not below the fingerprint's limit")
        return cls(hashes, limit)

    def signature(self) -> list[int]:
        """The one-permutation MinHash signature: BINS values, empty when there are no hashes.

        Bin `b` holds the least hash whose top bits are `b`. An empty bin takes the value of the
        next full bin to its right (circularly) plus `distance << 32`, so that two articles
        agree on it only when they agree on the borrowed value and on the distance.
        """
        # Ascending hashes, read backwards: the last write to a bin is its least hash.
        least = {h >> BIN_SHIFT: h for h in reversed(self.hashes)}
        if not least:
            return []
        signature = list(map(least.get, range(BINS), repeat(-1, BINS)))
        if -1 not in signature:
            return signature
        # Right to left, twice round, so that every empty bin has seen a full one.
        borrowed = distance = 0
        for position in range(2 * BINS - 1, -1, -1):
            value = signature[position % BINS]  # not yet overwritten: writes come behind
            if value < 0:
                distance += 1
            else:
                borrowed, distance = value, 0
            if position < BINS and value < 0:
                signature[position] = borrowed | (distance << 32)
        return signature

    def band_keys(self) -> array[int]:
        """One 64-bit key per LSH band of the signature (a key collision only adds a candidate).

        Computed natively; `reference_band_keys` is the definition.
        """
        return array("Q", newsalert_native.band_keys(self.hashes, BINS, BANDS, ROWS))

    def reference_band_keys(self) -> array[int]:
        """`band_keys`, in Python: each band's rows mixed into one 64-bit integer."""
        signature = self.signature()
        keys = array("Q")
        if not signature:
            return keys
        m0, m1, m2, m3 = _MIX
        for band in range(BANDS):
            a, b, c, d = signature[band * ROWS : band * ROWS + ROWS]
            keys.append(((a * m0 + b * m1 + c * m2 + d * m3) * m0 + band) & _MASK64)
        return keys

    def passages(self) -> array[int]:
        """The passage fingerprints: the hashes divisible by PASSAGE_SAMPLE (natively)."""
        return array("I", newsalert_native.passages(self.hashes, PASSAGE_SAMPLE))


@dataclass(frozen=True, slots=True)
class Overlap:
    """How much two articles share, in shingles (estimated when a fingerprint is capped)."""

    shared: float
    smaller: float
    larger: float

    @property
    def containment(self) -> float:
        """Shared shingles as a fraction of the smaller article's."""
        return self.shared / self.smaller if self.smaller else 0.0

    @property
    def jaccard(self) -> float:
        """Shared shingles as a fraction of all the shingles of both."""
        union = self.smaller + self.larger - self.shared
        return self.shared / union if union else 0.0


def overlap(a: Fingerprint, b: Fingerprint) -> Overlap:
    """Exact overlap of two fingerprints (natively: a merge of the two sorted arrays)."""
    limit = min(a.limit, b.limit)
    shared, left, right = newsalert_native.shared_hashes(a.hashes, b.hashes, limit)
    if limit == HASH_SPACE:
        return Overlap(shared, min(left, right), max(left, right))
    # A capped fingerprint: the hashes below both limits were compared; scale up.
    scale = HASH_SPACE / limit
    small, large = sorted((left * scale, right * scale))
    return Overlap(shared * scale, small, large)


@dataclass(frozen=True, slots=True)
class GroupingPolicy:
    """When two articles are one story (see the module documentation)."""

    copy_containment: float = 0.5
    passage_containment: float = 0.15
    passage_shared: int = 50
    min_shingles: int = 10  # an article with fewer shingles always starts its own story

    def same_story(self, found: Overlap) -> bool:
        """Whether an overlap makes two articles one story."""
        if found.shared < self.min_shingles:
            return False
        if found.containment >= self.copy_containment:
            return True
        return found.shared >= self.passage_shared and found.containment >= self.passage_containment


def story_id_for(first_article_id: str) -> str:
    """The id of the story an article starts: a pure function of the article id."""
    digest = hashlib.sha256(("story\x1f" + first_article_id).encode("utf-8")).hexdigest()
    return "story_" + digest[:32]


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """An article's place in its story, as of when the article was assigned."""

    story_id: str
    first: bool  # the article started the story
    sources: tuple[str, ...]  # sources that carried the story so far, in order, this one included
    articles: int  # articles of the story so far, this one included
    via: str | None  # the earlier article it was grouped with; None when it started the story


@dataclass(slots=True, eq=False)
class _Entry:
    article_id: str
    source: str | None
    at: datetime
    story_id: str
    ordinal: int
    via: str | None
    sources: tuple[str, ...]
    fingerprint: Fingerprint
    first_for: set[str] = field(default_factory=set)  # rule keys, `tenant/rule_id`
    # Entries are ordered by time, then id (ids are unique, so no two are equal): kept as a
    # tuple, as sorting and claims compare it more often than it is made.
    order: tuple[datetime, str] = field(init=False)
    handle: int = -1  # its number in the index's postings, once filed

    def __post_init__(self) -> None:
        self.order = (self.at, self.article_id)

    def assignment(self) -> StoryAssignment:
        return StoryAssignment(
            self.story_id, self.ordinal == 1, self.sources, self.ordinal, self.via
        )


_order = attrgetter("order")


@dataclass(slots=True, eq=False)
class _Story:
    members: dict[str, _Entry] = field(default_factory=dict)
    head: _Entry | None = None  # the member with the highest ordinal: the story's state
    firsts: dict[str, _Entry] = field(default_factory=dict)

    def add(self, entry: _Entry) -> None:
        self.members[entry.article_id] = entry
        if self.head is None or (entry.ordinal, entry.order) > (
            self.head.ordinal,
            self.head.order,
        ):
            self.head = entry
        for key in entry.first_for:
            holder = self.firsts.get(key)
            if holder is None or entry.order < holder.order:
                self.firsts[key] = entry

    def remove(self, entry: _Entry) -> None:
        del self.members[entry.article_id]
        for key in entry.first_for:
            if self.firsts.get(key) is entry:
                del self.firsts[key]
        if self.head is entry:
            self.head = max(self.members.values(), key=lambda e: (e.ordinal, e.order), default=None)


class StoryIndex:
    """Assigns each article a story; remembers the articles of the last `window`.

    Deterministic: two indexes fed the same articles in the same order give the same answers,
    and so does an index rebuilt with `restore` from another's records. `at` should be the
    time ingest received the article: a publisher's clock that runs days ahead would move the
    window and evict everything.
    """

    def __init__(
        self, window: timedelta = DEFAULT_WINDOW, policy: GroupingPolicy | None = None
    ) -> None:
        if window <= timedelta(0):
            raise ValueError("the story window must be positive")
        self.window = window
        self.policy = policy or GroupingPolicy()
        self._entries: dict[str, _Entry] = {}
        self._stories: dict[str, _Story] = {}
        self._expiry: list[tuple[datetime, str]] = []
        # Band and passage keys -> the BUCKET_CAP most recent entries holding each.
        self._postings = newsalert_native.StoryPostings(BUCKET_CAP)
        self._handles = count()
        self._newest: datetime | None = None
        self._evicted: list[str] = []

    def __len__(self) -> int:
        """Articles held (the window's)."""
        return len(self._entries)

    @property
    def native_bytes(self) -> int:
        """About how much memory the native key index holds (Python's tracing misses it)."""
        return self._postings.heap_bytes()

    @property
    def story_count(self) -> int:
        """Stories with at least one article in the window."""
        return len(self._stories)

    @property
    def newest(self) -> datetime | None:
        """The newest article time seen; the window ends there."""
        return self._newest

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._entries

    # -- assigning -------------------------------------------------------------------------

    def assign(
        self,
        article_id: str,
        source: str | None,
        at: datetime,
        title: str,
        body: str,
        scan_texts: tuple[str, str] | None = None,
    ) -> StoryAssignment:
        """The story of an article; the same answer again for an article id already held.

        `scan_texts`: title and body as analysed already (`MatchResult.scan_texts`), if so.
        """
        held = self._entries.get(article_id)
        if held is not None:
            return held.assignment()
        _require_aware(at)
        self.expire(at)
        fingerprint = Fingerprint.of_text(title, body, scan_texts)
        indexed = len(fingerprint) >= self.policy.min_shingles
        bands = fingerprint.band_keys() if indexed else array("Q")
        passages = fingerprint.passages() if indexed else array("I")
        match = self._best_match(fingerprint, bands, passages) if indexed else None
        if match is None:
            story_id = story_id_for(article_id)
            story = self._stories.get(story_id)  # exists only if the id was evicted and redone
        else:
            story_id = match.story_id
            story = self._stories[story_id]
        sources: tuple[str, ...] = ()
        if story is None or story.head is None:
            ordinal = 1
        else:
            ordinal, sources = story.head.ordinal + 1, story.head.sources
        if source and source not in sources and len(sources) < MAX_SOURCES:
            sources = (*sources, source)
        entry = _Entry(
            article_id=article_id,
            source=source,
            at=at,
            story_id=story_id,
            ordinal=ordinal,
            via=None if match is None else match.article_id,
            sources=sources,
            fingerprint=fingerprint,
        )
        self._insert(entry, bands, passages)
        return entry.assignment()

    def _best_match(
        self, fingerprint: Fingerprint, bands: array[int], passages: array[int]
    ) -> _Entry | None:
        candidates: list[_Entry] = self._postings.lookup(bands, passages)
        best: tuple[float, float] | None = None
        chosen: _Entry | None = None
        for entry in candidates:
            found = overlap(fingerprint, entry.fingerprint)
            if not self.policy.same_story(found):
                continue
            score = (found.containment, found.shared)
            if (
                best is None
                or score > best
                or (score == best and chosen is not None and entry.order < chosen.order)
            ):
                best, chosen = score, entry
        return chosen

    # -- first alert of a (rule, story) ------------------------------------------------------

    def first_for_rule(self, article_id: str, tenant: str, rule_id: str) -> bool:
        """Whether this (assigned) article is the first of its story to match the rule.

        Idempotent: asked again for the same article, the answer is the same. The claim ends
        with the article's eviction, so a story still alive after the window can alert anew.
        """
        return self.first_for_rules(article_id, [record_key(tenant, rule_id)])[0]

    def first_for_rules(self, article_id: str, rule_keys: Iterable[str]) -> list[bool]:
        """`first_for_rule` for each rule of `rule_keys` (`tenant/rule_id`), in order."""
        entry = self._entries.get(article_id)
        if entry is None:
            raise KeyError(f"article {article_id!r} was not assigned a story")
        firsts = self._stories[entry.story_id].firsts
        claimed = entry.first_for
        answers = []
        for key in rule_keys:
            holder = firsts.get(key)
            if holder is None:
                firsts[key] = entry
                claimed.add(key)
                answers.append(True)
            else:
                answers.append(holder is entry)
        return answers

    def release_firsts(self, article_id: str, rule_keys: Iterable[str]) -> None:
        """Give up the article's first-of-story claims for `rule_keys`: alerts that were not
        produced (too large to) leave the claim to the story's next article."""
        entry = self._entries.get(article_id)
        if entry is None:
            return
        firsts = self._stories[entry.story_id].firsts
        for key in rule_keys:
            if firsts.get(key) is entry:
                del firsts[key]
                entry.first_for.discard(key)

    # -- the window ------------------------------------------------------------------------

    def expire(self, now: datetime) -> None:
        """Move the window's end to `now` (if later) and evict what falls out of it."""
        _require_aware(now)
        if self._newest is None or now > self._newest:
            self._newest = now
        cutoff = self._newest - self.window
        expiry = self._expiry
        while expiry and expiry[0][0] < cutoff:
            _, article_id = heapq.heappop(expiry)
            entry = self._entries.pop(article_id, None)
            if entry is not None:
                self._remove(entry)
                self._evicted.append(article_id)

    def take_evicted(self) -> list[str]:
        """Article ids evicted since the last call (their records may be deleted)."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def _insert(self, entry: _Entry, bands: array[int], passages: array[int]) -> None:
        self._entries[entry.article_id] = entry
        heapq.heappush(self._expiry, (entry.at, entry.article_id))
        entry.handle = next(self._handles)
        # The postings order by the UTC instant; Python orders two times of one `tzinfo` by
        # wall clock, which differs only across a daylight-saving fold. Article times are
        # parsed with fixed offsets, where the two agree.
        at_us = (entry.at - _EPOCH) // _MICROSECOND
        self._postings.add(entry.handle, entry, at_us, entry.article_id, bands, passages)
        story = self._stories.get(entry.story_id)
        if story is None:
            story = self._stories[entry.story_id] = _Story()
        story.add(entry)

    def _remove(self, entry: _Entry) -> None:
        self._postings.remove(entry.handle)
        story = self._stories[entry.story_id]
        story.remove(entry)
        if not story.members:
            del self._stories[entry.story_id]

    # -- persistence -----------------------------------------------------------------------

    def record(self, article_id: str) -> StoryRecord:
        """The article's record, to write (keyed by article id) after its rules were asked."""
        entry = self._entries.get(article_id)
        if entry is None:
            raise KeyError(f"article {article_id!r} is not in the story index")
        return StoryRecord(
            article_id=entry.article_id,
            source=entry.source,
            at=entry.at,
            story_id=entry.story_id,
            ordinal=entry.ordinal,
            via=entry.via,
            story_sources=list(entry.sources),
            first_for=sorted(entry.first_for),
            shingles=entry.fingerprint.encode(),
            shingle_limit=entry.fingerprint.limit,
        )

    def records(self) -> Iterator[StoryRecord]:
        """The records of every article held, oldest first."""
        for entry in sorted(self._entries.values(), key=_order):
            yield self.record(entry.article_id)

    def restore(self, record: StoryRecord) -> None:
        """Re-apply a record (in any order) to rebuild the index after a restart.

        A record older than the window is ignored, and listed by `take_evicted`.
        """
        if record.article_id in self._entries:
            return
        self.expire(record.at)
        assert self._newest is not None
        if record.at < self._newest - self.window:
            self._evicted.append(record.article_id)
            return
        fingerprint = Fingerprint.decode(record.shingles, record.shingle_limit)
        indexed = len(fingerprint) >= self.policy.min_shingles
        self._insert(
            _Entry(
                article_id=record.article_id,
                source=record.source,
                at=record.at,
                story_id=record.story_id,
                ordinal=record.ordinal,
                via=record.via,
                sources=tuple(record.story_sources),
                fingerprint=fingerprint,
                first_for=set(record.first_for),
            ),
            fingerprint.band_keys() if indexed else array("Q"),
            fingerprint.passages() if indexed else array("I"),
        )


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("story times must carry a timezone")
