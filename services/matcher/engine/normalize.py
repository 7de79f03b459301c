"""Text analysis of rules.md section 2: the same for article text and rule text. No I/O.

Every character is normalised on its own (NFKC, casefold, diacritics dropped) into exactly one
character of a "translated" string of the same length, so token offsets in the translated
string are offsets in the original text. That makes the common path a handful of C-level
calls (`str.translate`, `re.split`, `itertools.accumulate`), with no Python loop per token.
Characters that normalise to nothing (combining marks, soft hyphen, zero-width characters) or
to several characters (`ß` -> `ss`, `ﬁ` -> `fi`) become placeholders, and the few tokens that
hold one are rebuilt on a slower, exact path.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import accumulate

# Step 3: ignored entirely, neither splitting a word nor appearing in it.
_IGNORED = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")
_APOSTROPHES = frozenset("'\u2019")

# Placeholders in the translated string, from the Unicode private use area.
_DROP = "\ue000"  # a character that vanishes inside a word (mark, soft hyphen, zero-width)
_EXPAND = "\ue001"  # a character whose normal form is several characters
_SEP = " "
_APOS = "'"

# Step 4: each of these characters is a token on its own.
_SOLO_RANGES = (
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x323AF),  # CJK extensions B..H, compatibility supplement
)
_SOLO_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _SOLO_RANGES)
_HAS_SOLO = re.compile(f"[{_SOLO_CLASS}]")
_SOLO_OR_RUN = re.compile(f"[{_SOLO_CLASS}]|[^ {_SOLO_CLASS}]+")
_SEP_RUNS = re.compile("( +)")
# A lone `s` right after an apostrophe is a possessive and is dropped (two chars -> two spaces).
_POSSESSIVE = re.compile(f"'s(?=[ '{_SOLO_CLASS}]|$)")


def _is_solo(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _SOLO_RANGES)


def _is_word_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LM" or category == "Nd"


def normalize_char(char: str) -> str:
    """Steps 1-3 for one character: its normal form, possibly empty or several characters."""
    if char in _IGNORED:
        return ""
    folded = unicodedata.normalize("NFKC", char).casefold()
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", folded) if unicodedata.category(c) != "Mn"
    )
    return unicodedata.normalize("NFC", stripped)


def _classify(normal: str) -> str:
    """What one normal-form character stands for in the translated string."""
    if normal in _APOSTROPHES:
        return _APOS
    if _is_solo(normal):
        return normal if unicodedata.category(normal)[0] == "L" else _SEP
    return normal if _is_word_char(normal) else _SEP


class _TranslationTable(dict[int, str]):
    """code point -> one translated character, computed once per distinct character."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        normal = normalize_char(char)
        if not normal:
            value = _DROP
        elif len(normal) == 1:
            value = _classify(normal)
        elif all(_classify(c) == _SEP for c in normal):
            value = _SEP
        else:
            value = _EXPAND
        self[code] = value
        return value


_TABLE = _TranslationTable()


@dataclass(frozen=True, slots=True)
class TokenStream:
    """The tokens of one field, with `[start, end)` offsets into the original text."""

    tokens: list[str]
    starts: list[int]
    ends: list[int]

    def __len__(self) -> int:
        return len(self.tokens)


def _translate(text: str) -> str:
    translated = text.translate(_TABLE)
    if _APOS in translated:
        translated = _POSSESSIVE.sub("  ", translated).replace(_APOS, _SEP)
    return translated


def analyze(text: str) -> TokenStream:
    """Split `text` into normalised tokens with offsets into `text` (rules.md section 2)."""
    translated = _translate(text)
    if _DROP in translated or _EXPAND in translated or _HAS_SOLO.search(translated):
        return _analyze_exact(text, translated)
    parts = _SEP_RUNS.split(translated)
    bounds = [0, *accumulate(map(len, parts))]
    tokens = parts[0::2]
    starts = bounds[0::2]
    ends = bounds[1::2]
    # re.split yields an empty first/last part when the text starts/ends with a separator.
    first = 1 if tokens and tokens[0] == "" else 0
    last = len(tokens) - 1 if len(tokens) > first and tokens[-1] == "" else len(tokens)
    return TokenStream(tokens[first:last], starts[first:last], ends[first:last])


def _analyze_exact(text: str, translated: str) -> TokenStream:
    """The general path: solo characters, placeholders, expansions."""
    tokens: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in _SOLO_OR_RUN.finditer(translated):
        start, end = match.span()
        piece = match.group()
        if _EXPAND in piece:
            _split_expanded(text, start, end, tokens, starts, ends)
            continue
        if _DROP in piece:
            piece = piece.replace(_DROP, "")
            if not piece:
                continue
            # The token starts at its first kept character; a combining mark after its last
            # kept character still belongs to that character, so the quote includes it.
            while translated[start] == _DROP:
                start += 1
            while text[end - 1] in _IGNORED:
                end -= 1
        tokens.append(piece)
        starts.append(start)
        ends.append(end)
    return TokenStream(tokens, starts, ends)


def _split_expanded(
    text: str, start: int, end: int, tokens: list[str], starts: list[int], ends: list[int]
) -> None:
    """Re-tokenise a run holding multi-character normal forms, character by character."""
    current: list[str] = []
    first = last = -1

    def flush() -> None:
        if current:
            tokens.append("".join(current))
            starts.append(first)
            ends.append(last + 1)
            current.clear()

    for index in range(start, end):
        for normal in normalize_char(text[index]):
            kind = _classify(normal)
            if kind in (_SEP, _APOS):
                flush()
            elif _is_solo(kind):
                flush()
                tokens.append(kind)
                starts.append(index)
                ends.append(index + 1)
            else:
                if not current:
                    first = index
                current.append(kind)
                last = index
    flush()


def analyze_terms(text: str) -> list[str]:
    """The normalised tokens of a rule's phrase or term (offsets are not needed there)."""
    return analyze(text).tokens
