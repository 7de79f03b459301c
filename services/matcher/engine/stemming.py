"""The Snowball English stemmer of rules.md section 4, memoised. No I/O."""

from __future__ import annotations

import snowballstemmer
from newsalert_native import StemCache


class Stemmer:
    """token -> stem, computed once per distinct token.

    The memo lives in the native core, which stems article tokens there without a call into
    Python per token; a miss calls the Snowball algorithm here, the only one. News
    vocabulary is bounded (the BBC corpus has about 30k distinct tokens), so the memo stays
    small; `max_entries` caps it against adversarial input all the same.
    """

    def __init__(self, max_entries: int = 500_000) -> None:
        algorithm = snowballstemmer.stemmer("english")
        # PyStemmer, when snowballstemmer uses it, keeps a cache of its own, which the memo
        # here makes redundant: purging it cost more than stemming (3.7 against 1.3 µs a new
        # word).
        if hasattr(algorithm, "maxCacheSize"):
            algorithm.maxCacheSize = 0
        self.cache = StemCache(algorithm.stemWord, max_entries)

    def __getitem__(self, token: str) -> str:
        return self.cache.stem(token)

    def __len__(self) -> int:
        return len(self.cache)
