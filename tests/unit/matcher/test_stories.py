"""Story grouping (services/matcher/stories.py): which articles are one story, the window,
idempotence, restoring from records, and deterministic ids."""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import newsalert_native
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.engine.matcher import Matcher
from services.matcher.stories import (
    BUCKET_CAP,
    MAX_SHINGLES,
    PASSAGE_SAMPLE,
    Fingerprint,
    GroupingPolicy,
    StoryAssignment,
    StoryIndex,
    StoryRecord,
    overlap,
    shingle_hashes,
    story_id_for,
)

SEEDS = Path(__file__).resolve().parents[3] / "seeds"
T0 = datetime(2023, 4, 15, 9, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _seed(name: str) -> tuple[str, str]:
    title, _, body = (SEEDS / name).read_text("utf-8").partition("\n")
    return title.strip(), body


EXAMINER = _seed("000_96e167dc266a1ce7.txt")  # the original report
REWRITE = _seed("004_a1267b0052e9a97b.txt")  # another outlet quoting whole passages of it

# Two unrelated reports, written for these tests, in the register of news copy (and with its
# stock phrases), about as long as the shorter seed.
TRAM = (
    "Council approves new tram line after two years of debate",
    """The city council voted on Tuesday to approve a new tram line linking the northern
suburbs with the central railway station, ending two years of often bitter debate. The
project is expected to cost about 410 million euros and to open at the end of 2027.

"This is a good day for everyone who sits in traffic every morning," the mayor said in a
statement after the vote, which passed by 31 votes to 18. Opposition councillors said the
cost estimates were unrealistic and warned that residents along the route would face years
of disruption while the tracks are laid.

According to the transport department, the line will have fourteen stops and carry up to
45,000 passengers a day. Trams will run every five minutes at peak times. The council said
it would apply for national funding to cover about a third of the cost, and that bus routes
in the northern districts would be redrawn to feed the new stops.

Shopkeepers on the planned route have asked for compensation during construction. A
spokesman for the local chamber of commerce said small businesses had already struggled
through the pandemic and could not survive another long period with fewer customers. The
council said a support fund would be set up before work begins next spring.

Environmental groups welcomed the decision but said the city should also invest in cycle
lanes. Air quality in the centre has breached legal limits in each of the past four years,
according to figures published by the regional environment agency in March.""",
)
HARVEST = (
    "Dry summer cuts wheat harvest to lowest level in a decade",
    """Farmers across the plains have brought in the smallest wheat harvest in ten years after
a summer with almost no rain, the agriculture ministry said on Friday. Output fell by 23 per
cent compared with last year, and prices for bread flour rose sharply on commodity markets.

"Many of our members have never seen fields this dry," the head of the farmers union told
reporters. He called on the government to speed up drought payments, which he said had taken
up to nine months to arrive after the last bad year.

The ministry said about 1.2 million hectares had been affected, mostly in the south and east.
Barley and maize were also hit, although yields of sunflowers held up better than expected.
Officials said there was no risk to food supplies because stocks from previous years remained
high, but warned that feed costs for livestock farmers would climb through the winter.

Economists said the poor harvest could add a few tenths of a percentage point to inflation by
the end of the year. The central bank, which meets next month, has so far kept interest rates
on hold while it waits to see whether price rises in food and energy persist.

Water companies have introduced hosepipe bans in several regions, and river levels on the main
shipping routes are at their lowest since records began, according to the national weather
service, which expects the dry spell to continue into October.""",
)
# One paragraph of background that two different reports might both carry.
BACKGROUND = (
    "The regional government has been criticised for years over the state of its public "
    "finances, and ratings agencies downgraded its debt twice last year."
)
FOOTER = (
    "Copyright 2023 Example Media Group. All rights reserved. This material may not be "
    "published, broadcast, rewritten or redistributed. Sign up for our morning newsletter "
    "to get the day's top stories in your inbox, and follow us on social media."
)


def _assign(
    index: StoryIndex,
    article_id: str,
    text: tuple[str, str],
    at: datetime = T0,
    source: str | None = "example.com",
) -> StoryAssignment:
    return index.assign(article_id, source, at, text[0], text[1])


def test_the_seed_articles_are_one_story() -> None:
    index = StoryIndex()
    first = _assign(index, "examiner-1", EXAMINER, source="washingtonexaminer.com")
    second = _assign(index, "rewrite-1", REWRITE, T0 + 2 * HOUR, source="example-blog.com")
    assert first.first
    assert first.articles == 1
    assert first.via is None
    assert second.story_id == first.story_id == story_id_for("examiner-1")
    assert not second.first
    assert second.articles == 2
    assert second.via == "examiner-1"
    assert second.sources == ("washingtonexaminer.com", "example-blog.com")


def test_the_seeds_share_passages_not_most_of_their_text() -> None:
    # The measurement the passage rule is set from: 86 shared 5-shingles, 20% of the shorter
    # article, Jaccard 0.09; far below any near-duplicate threshold.
    found = overlap(Fingerprint.of_text(*EXAMINER), Fingerprint.of_text(*REWRITE))
    assert found.shared == 86
    assert 0.19 < found.containment < 0.21
    assert found.jaccard < 0.1
    assert GroupingPolicy().same_story(found)


def test_a_syndicated_copy_with_another_headline_and_a_footer_is_the_same_story() -> None:
    index = StoryIndex()
    original = _assign(index, "examiner-1", EXAMINER, source="washingtonexaminer.com")
    copy = (
        "China's defence chief to visit Moscow next week",
        EXAMINER[1] + "\n\n" + FOOTER,
    )
    syndicated = _assign(index, "partner-1", copy, T0 + HOUR, source="partner.example")
    assert syndicated.story_id == original.story_id
    assert not syndicated.first


def test_a_short_copy_groups_through_the_minhash_bands() -> None:
    # 20 words: no passage fingerprint in common, so only the LSH bands can propose the pair.
    body = " ".join(TRAM[1].split()[15:35])
    original = ("Tram line approved", body)
    copy = ("City backs tram plan", body + " More follows.")
    left, right = Fingerprint.of_text(*original), Fingerprint.of_text(*copy)
    assert not set(left.passages()) & set(right.passages())
    index = StoryIndex()
    first = _assign(index, "a", original)
    assert _assign(index, "b", copy).story_id == first.story_id


@pytest.mark.parametrize(
    ("left", "right"),
    [(TRAM, HARVEST), (TRAM, EXAMINER), (HARVEST, REWRITE), (TRAM, REWRITE)],
)
def test_unrelated_articles_are_different_stories(
    left: tuple[str, str], right: tuple[str, str]
) -> None:
    index = StoryIndex()
    a = _assign(index, "left", left)
    b = _assign(index, "right", right, T0 + HOUR)
    assert a.story_id != b.story_id
    assert b.first
    assert b.via is None


def test_articles_sharing_one_background_paragraph_are_different_stories() -> None:
    index = StoryIndex()
    a = _assign(index, "tram", (TRAM[0], TRAM[1] + "\n\n" + BACKGROUND))
    b = _assign(index, "harvest", (HARVEST[0], HARVEST[1] + "\n\n" + BACKGROUND), T0 + HOUR)
    assert a.story_id != b.story_id


def test_very_short_articles_always_start_their_own_story() -> None:
    index = StoryIndex()
    a = index.assign("a", "x.com", T0, "Markets update", "")
    b = index.assign("b", "y.com", T0, "Markets update", "")
    assert a.story_id != b.story_id
    assert a.first
    assert b.first


def test_sources_are_listed_once_in_the_order_seen() -> None:
    index = StoryIndex()
    seen = [
        _assign(index, f"copy-{n}", EXAMINER, T0 + n * HOUR, source=source).sources
        for n, source in enumerate(["a.com", "b.com", "a.com", None, "c.com"])
    ]
    assert seen == [
        ("a.com",),
        ("a.com", "b.com"),
        ("a.com", "b.com"),
        ("a.com", "b.com"),
        ("a.com", "b.com", "c.com"),
    ]


def test_an_article_older_than_the_window_is_evicted() -> None:
    index = StoryIndex()
    first = _assign(index, "examiner-1", EXAMINER)
    _assign(index, "tram", TRAM, T0 + 73 * HOUR)  # moves the window past the first article
    assert "examiner-1" not in index
    assert index.take_evicted() == ["examiner-1"]
    later = _assign(index, "rewrite-1", REWRITE, T0 + 73 * HOUR)
    assert later.story_id != first.story_id
    assert later.first


def test_an_article_within_the_window_still_groups() -> None:
    index = StoryIndex()
    first = _assign(index, "examiner-1", EXAMINER)
    later = _assign(index, "rewrite-1", REWRITE, T0 + 71 * HOUR)
    assert later.story_id == first.story_id


def test_the_window_is_configurable() -> None:
    index = StoryIndex(window=timedelta(hours=2))
    first = _assign(index, "examiner-1", EXAMINER)
    later = _assign(index, "rewrite-1", REWRITE, T0 + 3 * HOUR)
    assert later.story_id != first.story_id


def test_a_story_lives_on_while_any_of_its_articles_is_in_the_window() -> None:
    index = StoryIndex()
    a = _assign(index, "a", EXAMINER, source="a.com")
    b = _assign(index, "b", EXAMINER, T0 + 48 * HOUR, source="b.com")
    c = _assign(index, "c", REWRITE, T0 + 100 * HOUR, source="c.com")  # "a" has left
    assert "a" not in index
    assert a.story_id == b.story_id == c.story_id
    assert (c.articles, c.via, c.sources) == (3, "b", ("a.com", "b.com", "c.com"))
    assert index.story_count == 1


def test_memory_is_bounded_by_the_window() -> None:
    index = StoryIndex(window=timedelta(hours=10))
    for n in range(50):
        _assign(index, f"tram-{n}", (TRAM[0], f"Update {n}. " + TRAM[1]), T0 + n * HOUR)
    assert len(index) == 11  # the articles of hours 39..49
    assert index.story_count == 1


def test_assigning_an_article_twice_gives_the_same_answer_and_counts_it_once() -> None:
    index = StoryIndex()
    first = _assign(index, "examiner-1", EXAMINER)
    second = _assign(index, "rewrite-1", REWRITE, T0 + HOUR, source="b.com")
    assert _assign(index, "examiner-1", EXAMINER, T0 + 2 * HOUR) == first
    assert _assign(index, "rewrite-1", REWRITE, T0 + 3 * HOUR, source="b.com") == second
    third = _assign(index, "copy-1", EXAMINER, T0 + 4 * HOUR)
    assert third.articles == 3
    assert len(index) == 3


def test_the_first_article_of_a_story_to_match_a_rule_is_first_for_it() -> None:
    index = StoryIndex()
    _assign(index, "a", EXAMINER)
    _assign(index, "b", REWRITE, T0 + HOUR)
    assert index.first_for_rule("b", "acme", "li-shangfu")  # "a" did not match this rule
    assert not index.first_for_rule("a", "acme", "li-shangfu")
    assert index.first_for_rule("b", "acme", "li-shangfu")  # asked again: still first
    assert index.first_for_rule("a", "acme", "military-drills")
    assert index.first_for_rule("a", "other", "li-shangfu")  # another tenant's rule
    _assign(index, "tram", TRAM, T0 + 2 * HOUR)
    assert index.first_for_rule("tram", "acme", "li-shangfu")  # another story


def test_asking_about_an_unassigned_article_is_an_error() -> None:
    with pytest.raises(KeyError, match="was not assigned"):
        StoryIndex().first_for_rule("nope", "acme", "rule")


def _stream() -> list[tuple[str, tuple[str, str], datetime, str]]:
    return [
        ("examiner-1", EXAMINER, T0, "washingtonexaminer.com"),
        ("tram-1", TRAM, T0 + HOUR, "city.example"),
        ("rewrite-1", REWRITE, T0 + 2 * HOUR, "blog.example"),
        ("harvest-1", HARVEST, T0 + 30 * HOUR, "farm.example"),
        ("tram-2", (TRAM[0], TRAM[1] + FOOTER), T0 + 31 * HOUR, "paper.example"),
        ("examiner-2", EXAMINER, T0 + 60 * HOUR, "partner.example"),
    ]


def _continuation() -> list[tuple[str, tuple[str, str], datetime, str]]:
    return [
        ("rewrite-2", REWRITE, T0 + 62 * HOUR, "other.example"),
        ("examiner-1", EXAMINER, T0 + 62 * HOUR, "washingtonexaminer.com"),  # redelivered
        ("harvest-2", (HARVEST[0], FOOTER + HARVEST[1]), T0 + 80 * HOUR, "x.example"),
        ("tram-3", TRAM, T0 + 110 * HOUR, "y.example"),  # tram-1 and tram-2 have left
    ]


def _feed(
    index: StoryIndex, stream: list[tuple[str, tuple[str, str], datetime, str]]
) -> list[tuple[StoryAssignment, bool]]:
    answers = []
    for article_id, text, at, source in stream:
        assigned = index.assign(article_id, source, at, *text)
        answers.append((assigned, index.first_for_rule(article_id, "acme", "watch")))
    return answers


def test_an_index_restored_from_records_answers_like_the_original() -> None:
    original = StoryIndex()
    _feed(original, _stream())
    # Through JSON, in another order, as a compacted topic may deliver them.
    records = [StoryRecord.model_validate_json(r.model_dump_json()) for r in original.records()]
    random.Random(7).shuffle(records)
    restored = StoryIndex()
    for record in records:
        restored.restore(record)
    assert (len(restored), restored.story_count) == (len(original), original.story_count)
    assert _feed(restored, _continuation()) == _feed(original, _continuation())
    assert [r.model_dump() for r in restored.records()] == [
        r.model_dump() for r in original.records()
    ]


def test_restoring_a_record_twice_or_out_of_window_changes_nothing() -> None:
    original = StoryIndex()
    _feed(original, _stream())
    records = list(original.records())
    restored = StoryIndex()
    for record in records + records:
        restored.restore(record)
    stale = records[0].model_copy(update={"article_id": "stale", "at": T0 - 100 * HOUR})
    restored.restore(stale)
    assert "stale" not in restored
    assert "stale" in restored.take_evicted()
    assert len(restored) == len(original)


def test_story_ids_are_the_same_in_two_indexes_fed_the_same_stream() -> None:
    one, two = StoryIndex(), StoryIndex()
    assert _feed(one, _stream()) == _feed(two, _stream())
    ids = {a.story_id for a, _ in _feed(one, _continuation())}
    assert story_id_for("examiner-1") in ids


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        StoryIndex().assign("a", None, datetime(2023, 4, 15), *TRAM)  # noqa: DTZ001


def _words(count: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(f"w{rng.randrange(50_000)}" for _ in range(count))


def test_a_long_article_and_its_copy_group_although_their_fingerprints_are_capped() -> None:
    body = _words(3 * MAX_SHINGLES, seed=1)
    long = Fingerprint.of_text("", body)
    assert len(long) == MAX_SHINGLES
    assert long.limit < 2**32
    index = StoryIndex()
    first = index.assign("long", None, T0, "A long report", body)
    copy = index.assign("copy", None, T0, "A long report, again", body + " " + FOOTER)
    excerpt = index.assign("excerpt", None, T0, "An excerpt", body[: len(body) // 10])
    assert copy.story_id == excerpt.story_id == first.story_id


def test_fingerprints_survive_encoding() -> None:
    fingerprint = Fingerprint.of_text(*EXAMINER)
    again = Fingerprint.decode(fingerprint.encode(), fingerprint.limit)
    assert list(again.hashes) == list(fingerprint.hashes)
    assert again.signature() == fingerprint.signature()


def test_shingle_hashes_do_not_depend_on_the_process() -> None:
    # CRC-32 of the shingle's text (zlib.crc32(b"one two three four five")): the same value in
    # every process and on every platform, unlike Python's salted hash() of a str.
    assert list(Fingerprint.of_text("", "One two, three four five!").hashes) == [1_354_651_064]


WORD = st.sampled_from([f"word{n}" for n in range(40)] + ["China", "Russia", "defence"])


@settings(max_examples=100, deadline=None, database=None)
@given(title=st.lists(WORD, max_size=12), body=st.lists(WORD, min_size=20, max_size=300))
def test_an_article_always_groups_with_an_exact_copy_of_itself(
    title: list[str], body: list[str]
) -> None:
    text = (" ".join(title), " ".join(body))
    index = StoryIndex()
    first = index.assign("original", "a.com", T0, *text)
    copy = index.assign("copy", "b.com", T0 + HOUR, *text)
    if len(Fingerprint.of_text(*text)) >= GroupingPolicy().min_shingles:
        assert copy.story_id == first.story_id
    else:
        assert copy.story_id != first.story_id


# -- the native arithmetic ------------------------------------------------------------------
# Shingles and band keys run natively (src/shingles.rs); `shingle_hashes` and
# `reference_band_keys` are their definition.

_FIELD_WORDS = st.sampled_from(
    ["china", "Zürich", "Zu\u0308rich", "straße", "ﬁnance", "李尚福", "U.S.", "Müller's", "a"]
    + [f"w{n}" for n in range(12)]
)
_FIELD = st.lists(_FIELD_WORDS, max_size=40).map(" ".join)
_EMPTY_MATCHER, _ = Matcher.build([])


@dataclass(frozen=True)
class _Text:
    title: str
    body: str
    language: str | None = None
    source: str | None = None


@settings(max_examples=300, deadline=None)
@given(title=_FIELD, body=_FIELD)
def test_native_shingles_are_the_reference_shingles(title: str, body: str) -> None:
    native = Fingerprint.of_text(title, body)
    reference = Fingerprint.of(shingle_hashes(title, body))
    assert list(native.hashes) == list(reference.hashes)
    assert native.limit == reference.limit


@settings(max_examples=100, deadline=None)
@given(title=_FIELD, body=_FIELD)
def test_the_fingerprint_of_the_matchers_analysis_is_the_fingerprint_of_the_text(
    title: str, body: str
) -> None:
    result = _EMPTY_MATCHER.match(_Text(title, body))
    assert result.scan_texts is not None

    from_match = Fingerprint.of_text(title, body, result.scan_texts)

    assert list(from_match.hashes) == list(Fingerprint.of_text(title, body).hashes)


def test_native_shingles_of_a_capped_article_are_the_reference_shingles() -> None:
    body = _words(3 * MAX_SHINGLES, seed=2)
    native = Fingerprint.of_text("A long report", body)
    reference = Fingerprint.of(shingle_hashes("A long report", body))
    assert list(native.hashes) == list(reference.hashes)
    assert native.limit == reference.limit < 2**32


# Sparse hash sets leave most bins empty, which is where borrowing happens.
_HASHES = st.sets(st.integers(0, 2**32 - 1), max_size=300).map(sorted)


@settings(max_examples=500, deadline=None)
@given(hashes=_HASHES)
def test_native_band_keys_are_the_reference_band_keys(hashes: list[int]) -> None:
    fingerprint = Fingerprint(array("I", hashes))
    assert list(fingerprint.band_keys()) == list(fingerprint.reference_band_keys())


@settings(max_examples=200, deadline=None)
@given(hashes=_HASHES)
def test_native_passages_are_the_hashes_divisible_by_the_sample(hashes: list[int]) -> None:
    passages = Fingerprint(array("I", hashes)).passages()
    assert list(passages) == [h for h in hashes if h % PASSAGE_SAMPLE == 0]


def test_band_keys_refuse_a_signature_layout_they_do_not_compute() -> None:
    with pytest.raises(ValueError, match="power of two"):
        newsalert_native.band_keys(array("I", [1, 2, 3]), 100, 25, 4)
    with pytest.raises(ValueError, match="bands \\* rows"):
        newsalert_native.band_keys(array("I", [1, 2, 3]), 128, 16, 4)


# Small hash values, so that two sets share some; limits below, inside and above them.
_SMALL_HASHES = st.sets(st.integers(0, 60), max_size=40).map(sorted)


@settings(max_examples=500, deadline=None)
@given(a=_SMALL_HASHES, b=_SMALL_HASHES, limit=st.integers(0, 70) | st.just(2**32))
def test_native_shared_hashes_count_the_common_hashes_below_the_limit(
    a: list[int], b: list[int], limit: int
) -> None:
    below_a = {h for h in a if h < limit}
    below_b = {h for h in b if h < limit}
    assert newsalert_native.shared_hashes(array("I", a), array("I", b), limit) == (
        len(below_a & below_b),
        len(below_a),
        len(below_b),
    )


def test_shared_hashes_refuse_arrays_of_another_width() -> None:
    with pytest.raises(BufferError):
        newsalert_native.shared_hashes(array("Q", [1]), array("I", [1]), 2**32)


# -- the native postings ---------------------------------------------------------------------
# Band and passage keys are filed natively (src/postings.rs); this is their definition: each
# key keeps its `cap` most recent entries, ordered by time then id, and a lookup gives every
# entry under the keys, each once, bands first, each key's oldest first.


class _ReferencePostings:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.keys: list[dict[int, list[tuple[int, str]]]] = [{}, {}]

    def add(self, order: tuple[int, str], bands: list[int], passages: list[int]) -> None:
        for index, keys in enumerate((bands, passages)):
            for key in keys:
                bucket = sorted([*self.keys[index].get(key, []), order])
                self.keys[index][key] = bucket[-self.cap :]

    def remove(self, order: tuple[int, str], bands: list[int], passages: list[int]) -> None:
        for index, keys in enumerate((bands, passages)):
            for key in keys:
                bucket = [o for o in self.keys[index].get(key, []) if o != order]
                if bucket:
                    self.keys[index][key] = bucket
                else:
                    self.keys[index].pop(key, None)

    def lookup(self, bands: list[int], passages: list[int]) -> list[str]:
        found: dict[str, None] = {}
        for index, keys in enumerate((bands, passages)):
            for key in keys:
                found.update((article_id, None) for _, article_id in self.keys[index].get(key, []))
        return list(found)


_KEYS = st.lists(st.integers(min_value=0, max_value=7), max_size=5)  # repeats too


@settings(max_examples=200, deadline=None)
@given(data=st.data(), cap=st.integers(min_value=1, max_value=3))
def test_native_postings_keep_and_find_what_the_reference_does(
    data: st.DataObject, cap: int
) -> None:
    native = newsalert_native.StoryPostings(cap)
    reference = _ReferencePostings(cap)
    filed: dict[int, tuple[tuple[int, str], list[int], list[int]]] = {}
    for handle in range(data.draw(st.integers(min_value=1, max_value=30))):
        action = data.draw(st.sampled_from(["add", "add", "remove", "lookup"]))
        if action == "remove" and filed:
            gone = data.draw(st.sampled_from(sorted(filed)))
            order, bands, passages = filed.pop(gone)
            native.remove(gone)
            reference.remove(order, bands, passages)
        elif action == "lookup":
            bands, passages = data.draw(_KEYS), data.draw(_KEYS)
            assert native.lookup(array("Q", bands), array("I", passages)) == reference.lookup(
                bands, passages
            )
        else:
            at_us = data.draw(st.integers(min_value=-2, max_value=2)) * 1_000_000
            order = (at_us, f"article-{data.draw(st.integers(0, 99)):02d}-{handle}")
            bands, passages = data.draw(_KEYS), data.draw(_KEYS)
            filed[handle] = (order, bands, passages)
            native.add(handle, order[1], *order, array("Q", bands), array("I", passages))
            reference.add(order, bands, passages)
    every = list(range(8))
    assert native.lookup(array("Q", every), array("I", every)) == reference.lookup(every, every)


def test_native_postings_report_the_memory_they_hold_and_forget_removed_entries() -> None:
    postings = newsalert_native.StoryPostings(BUCKET_CAP)
    empty = postings.heap_bytes()
    keys = array("Q", range(1000)), array("I", range(500))
    postings.add(1, "entry", 0, "article-1", *keys)

    assert postings.heap_bytes() > empty + 1500 * 8
    postings.remove(1)
    assert len(postings) == 0
    assert postings.lookup(*keys) == []
    with pytest.raises(KeyError):
        postings.remove(1)  # not filed any more
