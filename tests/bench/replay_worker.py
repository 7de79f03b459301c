"""`python -m tests.bench.replay_worker`: the matcher worker with its matching done beforehand.

The floor of the worker's plumbing. Everything is the real worker (faust consuming the
articles topic, the alerts and story records through the same `BatchingProducer`, metrics,
logs, acknowledgement once stored), except that `ArticleProcessor.process` is a table lookup:
the outcome of each article was computed by the benchmark beforehand and pickled to the file
`NEWSALERT_BENCH_OUTCOMES` names. What this worker sustains is what one worker could sustain
if decoding, matching, story grouping and alert writing cost nothing.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from datetime import datetime
from pathlib import Path

import faust

from services.common.logs import configure_logging
from services.common.settings import MatcherSettings
from services.matcher.__main__ import _prepare
from services.matcher.engine.matcher import Matcher
from services.matcher.processing import Processed
from services.matcher.worker import MatcherWorker

OUTCOMES_VARIABLE = "NEWSALERT_BENCH_OUTCOMES"


class ReplayedProcessor:
    """Answers `process` with the outcome computed beforehand for the same record value."""

    def __init__(self, outcomes: dict[bytes, Processed]) -> None:
        self._outcomes = outcomes

    def process(self, raw: bytes | None, matcher: Matcher, now: datetime) -> Processed:
        """The outcome of `raw`, as the real processor computed it before the run."""
        assert raw is not None, "the benchmark produces no tombstones"
        return self._outcomes[raw]


def main() -> None:
    """Run one worker whose processor replays the outcomes file."""
    settings = MatcherSettings()
    configure_logging("matcher", settings.log_level)
    outcomes = pickle.loads(Path(os.environ[OUTCOMES_VARIABLE]).read_bytes())
    worker = MatcherWorker(settings)
    worker.processor = ReplayedProcessor(outcomes)  # type: ignore[assignment]
    asyncio.run(_prepare(settings, worker))
    asyncio.set_event_loop(asyncio.new_event_loop())
    faust.Worker(worker.app, quiet=True, override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
