"""The Snowball English stemmer of rules.md section 4, memoised. No I/O."""

from __future__ import annotations

import snowballstemmer


class Stemmer(dict[str, str]):
    """token -> stem, computed once per distinct token.

    A dict subclass so that `map(stemmer.__getitem__, tokens)` stays in C for known tokens.
    News vocabulary is bounded (the BBC corpus has about 30k distinct tokens), so the memo
    stays small; `max_entries` caps it against adversarial input all the same.
    """

    def __init__(self, max_entries: int = 500_000) -> None:
        super().__init__()
        self._algorithm = snowballstemmer.stemmer("english")
        self._max_entries = max_entries

    def __missing__(self, token: str) -> str:
        stem: str = self._algorithm.stemWord(token)
        if len(self) >= self._max_entries:
            self.clear()
        self[token] = stem
        return stem

    def stem_all(self, tokens: list[str]) -> list[str]:
        """The stems of `tokens`, in order."""
        return list(map(self.__getitem__, tokens))
