"""Text analysis of rules.md section 2: the same for article text and rule text. No I/O.

Every character is normalised on its own (NFKC, casefold, diacritics dropped) into exactly one
character of a "translated" string of the same length, so token offsets in the translated
string are offsets in the original text. That makes the common path a handful of C-level
calls (`str.translate`, `str.split`, the native `token_offsets`), with no Python loop per token.
Characters that normalise to nothing (combining marks, soft hyphen, zero-width characters) or
to several characters (`ß` -> `ss`, `ﬁ` -> `fi`) become placeholders, and the few tokens that
hold one are rebuilt on a slower, exact path.
"""

from __future__ import annotations

import re
import unicodedata

from newsalert_native import token_offsets

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
# A lone `s` right after an apostrophe is a possessive and is dropped. Ignored characters
# (step 3) may stand on either side of the `s`; every character matched becomes a space, so
# the translated text keeps its length.
_POSSESSIVE = re.compile(f"'{_DROP}*s{_DROP}*(?=[ '{_SOLO_CLASS}]|$)")


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


class TokenStream:
    """The tokens of one field, with `[start, end)` offsets into the original text.

    On the common path only the translated text is kept: the native core scans it as is
    (`scan_text`), and tokens and offsets are worked out on first use, which only articles
    with a match need, to quote their evidence.
    """

    __slots__ = ("_ends", "_starts", "_tokens", "_translated")

    def __init__(
        self,
        tokens: list[str] | None = None,
        starts: list[int] | None = None,
        ends: list[int] | None = None,
        translated: str = "",
    ) -> None:
        self._tokens = tokens
        self._starts = starts
        self._ends = ends
        self._translated = translated

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def tokens(self) -> list[str]:
        """The normalised tokens, in order."""
        if self._tokens is None:
            # Every separator is a space in the translated text, so str.split() yields them.
            self._tokens = self._translated.split()
        return self._tokens

    @property
    def scan_text(self) -> str:
        """The tokens separated by one or more spaces (a token never holds one)."""
        if self._tokens is None or self._translated:
            return self._translated
        return _SEP.join(self._tokens)

    @property
    def starts(self) -> list[int]:
        """Offset of each token's first character."""
        if self._starts is None:
            self._compute_offsets()
        assert self._starts is not None
        return self._starts

    @property
    def ends(self) -> list[int]:
        """Offset just past each token's last character."""
        if self._ends is None:
            self._compute_offsets()
        assert self._ends is not None
        return self._ends

    @property
    def located(self) -> str | tuple[list[int], list[int]]:
        """What the native evidence writer locates the tokens by: the translated text, whose
        runs of non-spaces are the tokens, on the common path; else the offsets."""
        if self._starts is None and self._translated:
            return self._translated
        return self.starts, self.ends

    def _compute_offsets(self) -> None:
        # Natively: in Python, a list of parts and an int object per token cost more than
        # matching the article did (about 200 µs for a 400-token body).
        self._starts, self._ends = token_offsets(self._translated)


# ASCII to ASCII, so CPython's fast translate path applies (a 128-entry cache, no dict calls).
_ASCII_TABLE = {code: _TABLE[code] for code in range(128)}
# The same as one string, for the native rule compiler (services/matcher/native/src/compile.rs).
ASCII_TABLE = "".join(_ASCII_TABLE[code] for code in range(128))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _translate_one(match: re.Match[str]) -> str:
    return _TABLE[ord(match.group())]


def _translate(text: str) -> str:
    if text.isascii():
        return _fix_apostrophes(text.translate(_ASCII_TABLE))
    # News text is mostly ASCII with a few curly quotes and accents: translate just those in
    # Python, and the rest on the ASCII fast path when nothing non-ASCII remains.
    partial = _NON_ASCII.sub(_translate_one, text)
    if partial.isascii():
        return _fix_apostrophes(partial.translate(_ASCII_TABLE))
    return _fix_apostrophes(text.translate(_TABLE))


def _blank(match: re.Match[str]) -> str:
    return _SEP * (match.end() - match.start())


def _fix_apostrophes(translated: str) -> str:
    if _APOS in translated:
        translated = _POSSESSIVE.sub(_blank, translated).replace(_APOS, _SEP)
    return translated


def analyze(text: str) -> TokenStream:
    """Split `text` into normalised tokens with offsets into `text` (rules.md section 2)."""
    translated = _translate(text)
    if not translated.isascii() and (
        _DROP in translated or _EXPAND in translated or _HAS_SOLO.search(translated)
    ):
        return _analyze_exact(text, translated)
    return TokenStream(translated=translated)


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
