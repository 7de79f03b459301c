"""One Aho-Corasick pass over an article's token streams finds every rule literal. No I/O.

The scanned text is each field's tokens joined by a separator and framed by it, raw tokens
first, then (only when some rule stems) stemmed tokens with another separator:

    " tok tok tok \\n body tok tok \\n\\x01stem\\x01stem\\x01\\n\\x01stem\\x01"

Keys are framed the same way, so a key matches whole tokens only, and never across fields or
between the raw and the stemmed streams. Offsets of hits are turned into token positions only
for the literals that a candidate rule actually asks about.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate

import ahocorasick

from services.matcher.engine.compile import RAW_SEP, STEM_SEP, key_token_count
from services.matcher.engine.normalize import TokenStream
from services.matcher.engine.verify import Occurrence


def _token_starts(tokens: list[str]) -> list[int]:
    # Start of token i in sep.join(tokens) is (sum of earlier lengths) + i; all in C.
    return list(map(operator.add, accumulate(map(len, tokens), initial=0), range(len(tokens))))


def _build(keys: list[str]) -> ahocorasick.Automaton | None:
    if not keys:
        return None
    automaton = ahocorasick.Automaton()
    for key in keys:
        automaton.add_word(key, key)
    automaton.make_automaton()
    return automaton


class LiteralAutomaton:
    """Every literal key of a ruleset: raw keys in one automaton, stemmed keys in another.

    Two automata rather than one because scanning costs per character: the stemmed stream
    is scanned only with the (usually much smaller) stemmed automaton, which stays in cache.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._shape: dict[str, tuple[int, int]] = {}
        raw: list[str] = []
        stemmed: list[str] = []
        for key in keys:
            self._shape[key] = (len(key), key_token_count(key))
            (stemmed if key[0] == STEM_SEP else raw).append(key)
        self.size = len(self._shape)
        self.uses_stems = bool(stemmed)
        self._raw = _build(raw)
        self._stemmed = _build(stemmed)

    def scan(
        self, fields: tuple[TokenStream, TokenStream], stems: tuple[list[str], list[str]] | None
    ) -> ArticleScan:
        """Scan one article's fields (title, body) and their stems when rules need them."""
        return ArticleScan(self._raw, self._stemmed, self._shape, fields, stems)


class ArticleScan:
    """The literal hits in one article, with token positions worked out on demand.

    `hits` is every key that occurs: enough to decide most rules. Positions are grouped
    per key only when something asks for them (NEAR, a field-restricted atom, evidence).
    """

    def __init__(
        self,
        raw: ahocorasick.Automaton | None,
        stemmed: ahocorasick.Automaton | None,
        shape: dict[str, tuple[int, int]],
        fields: tuple[TokenStream, TokenStream],
        stems: tuple[list[str], list[str]] | None,
    ) -> None:
        streams = [fields[0].tokens, fields[1].tokens]
        separators = [RAW_SEP, RAW_SEP]
        if stems is not None:
            streams += stems
            separators += [STEM_SEP, STEM_SEP]
        parts: list[str] = []
        # (end offset of the region, field index, offset of its first token, its tokens)
        self._regions: list[tuple[int, int, int, list[str]]] = []
        offset = 0
        for index, (tokens, sep) in enumerate(zip(streams, separators, strict=True)):
            joined = sep + sep.join(tokens) + sep + "\n"
            parts.append(joined)
            self._regions.append((offset + len(joined), index % 2, offset + 1, tokens))
            offset += len(joined)
        self._shape = shape
        self._starts: dict[int, list[int]] = {}
        self._memo: dict[str, list[Occurrence]] = {}
        self._ends_by_key: dict[str, list[int]] | None = None
        text = "".join(parts)
        raw_end = self._regions[1][0]
        # (end offset, key) pairs, collected in C; no Python code runs per hit here.
        self._raw: list[tuple[int, str]] = list(raw.iter(text, 0, raw_end)) if raw else []
        if stemmed is not None and stems is not None:
            self._raw += stemmed.iter(text, raw_end, len(text))
        self.hits: frozenset[str] = frozenset(map(_KEY, self._raw))

    def occurrences(self, key: str) -> list[Occurrence]:
        """Occurrences of `key` as (field, first token, end token), in text order."""
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        if self._ends_by_key is None:
            grouped: dict[str, list[int]] = {}
            for end, hit in self._raw:
                slot = grouped.get(hit)
                if slot is None:
                    grouped[hit] = [end]
                else:
                    slot.append(end)
            self._ends_by_key = grouped
        ends = self._ends_by_key.get(key)
        if ends is None:
            return []
        length, ntok = self._shape[key]
        found: list[Occurrence] = []
        for end in ends:
            first_char = end - length + 2  # skip the key's leading separator
            for index, (region_end, field, base, tokens) in enumerate(self._regions):
                if first_char < region_end:
                    starts = self._starts.get(index)
                    if starts is None:
                        starts = self._starts[index] = _token_starts(tokens)
                    token = bisect_left(starts, first_char - base)
                    found.append((field, token, token + ntok))
                    break
        self._memo[key] = found
        return found


_KEY = operator.itemgetter(1)
