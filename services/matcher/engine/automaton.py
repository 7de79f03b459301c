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


class LiteralAutomaton:
    """Every literal key of a ruleset in one automaton."""

    def __init__(self, keys: Iterable[str]) -> None:
        automaton = ahocorasick.Automaton()
        stems = False
        for key in keys:
            automaton.add_word(key, (key, len(key), key_token_count(key)))
            stems = stems or key[0] == STEM_SEP
        self.size = len(automaton)
        self.uses_stems = stems
        self._automaton = automaton if self.size else None
        if self._automaton is not None:
            self._automaton.make_automaton()

    def scan(
        self, fields: tuple[TokenStream, TokenStream], stems: tuple[list[str], list[str]] | None
    ) -> ArticleScan:
        """Scan one article's fields (title, body) and their stems when rules need them."""
        return ArticleScan(self._automaton, fields, stems)


class ArticleScan:
    """The literal hits in one article, with token positions worked out on demand."""

    def __init__(
        self,
        automaton: ahocorasick.Automaton | None,
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
        self._starts: dict[int, list[int]] = {}
        self._memo: dict[str, list[Occurrence]] = {}
        self.hits: dict[str, list[int]] = {}
        self._lengths: dict[str, tuple[int, int]] = {}
        if automaton is None:
            return
        hits = self.hits
        lengths = self._lengths
        for end, (key, length, ntok) in automaton.iter("".join(parts)):
            found = hits.get(key)
            if found is None:
                hits[key] = [end]
                lengths[key] = (length, ntok)
            else:
                found.append(end)

    def occurrences(self, key: str) -> list[Occurrence]:
        """Occurrences of `key` as (field, first token, end token), in text order."""
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        ends = self.hits.get(key)
        if ends is None:
            return []
        length, ntok = self._lengths[key]
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
