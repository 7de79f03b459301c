"""`python -m tests.bench.replay_worker`: the matcher worker with its work done beforehand.

The floors of the worker's plumbing. The outcome of each article was computed by the
benchmark beforehand and pickled to the file `NEWSALERT_BENCH_OUTCOMES` names; then, by
`NEWSALERT_BENCH_REPLAY`:

- `outcomes`: everything is the real worker (faust consuming the articles topic, the alerts
  and story records through the same `BatchingProducer`, metrics, logs, the story view reading
  the stories topic back, acknowledgement once stored), except that `ArticleProcessor.process`
  is a table lookup. What it sustains is what one worker could sustain if decoding, matching,
  story grouping and alert writing cost nothing.
- `records`: faust, aiokafka and the batching producer alone: each article's records (alerts
  and story record, as the worker would send them) are sent as they are, the article counted
  and acknowledged once they are stored; no metrics by severity, no log line, no story index.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from datetime import datetime
from pathlib import Path
from typing import Any

import faust

from services.common.batching_producer import Delivery, Record
from services.common.kafka import encode
from services.common.logs import configure_logging
from services.common.settings import MatcherSettings
from services.matcher.__main__ import prepare
from services.matcher.engine.matcher import Matcher
from services.matcher.processing import Processed
from services.matcher.worker import MatcherWorker

OUTCOMES_VARIABLE = "NEWSALERT_BENCH_OUTCOMES"
DEPTH_VARIABLE = "NEWSALERT_BENCH_REPLAY"


class ReplayedProcessor:
    """Answers `process` with the outcome computed beforehand for the same record value."""

    def __init__(self, outcomes: dict[bytes, Processed]) -> None:
        self._outcomes = outcomes

    def process(self, raw: bytes | None, matcher: Matcher, now: datetime) -> Processed:
        """The outcome of `raw`, as the real processor computed it before the run."""
        assert raw is not None, "the benchmark produces no tombstones"
        return self._outcomes[raw]


class RecordsWorker(MatcherWorker):
    """The worker reduced to faust, aiokafka and the batching producer."""

    def __init__(self, settings: MatcherSettings, outcomes: dict[bytes, Processed]) -> None:
        super().__init__(settings)
        alerts, stories = self.topics.alerts.name, self.topics.stories.name
        self._records: dict[bytes, list[Record]] = {}
        for raw, outcome in outcomes.items():
            assert outcome.story is not None, "every benchmark article is an article"
            records: list[Record] = [(alerts, a.key, a.value) for a in outcome.alerts]
            records.append((stories, outcome.story.article_id.encode(), encode(outcome.story)))
            self._records[raw] = records

    def _handle(self, event: Any) -> Delivery:
        assert self._batches is not None
        delivery = self._batches.send(self._records[event.value])
        self.metrics.articles.labels("matched").inc()
        return delivery


def main() -> None:
    """Run one worker that replays the outcomes file at the depth asked for."""
    settings = MatcherSettings()
    configure_logging("matcher", settings.log_level)
    outcomes = pickle.loads(Path(os.environ[OUTCOMES_VARIABLE]).read_bytes())
    if os.environ[DEPTH_VARIABLE] == "records":
        worker: MatcherWorker = RecordsWorker(settings, outcomes)
    else:
        worker = MatcherWorker(settings)
        worker.processor = ReplayedProcessor(outcomes)  # type: ignore[assignment]
    asyncio.run(prepare(settings, worker))
    asyncio.set_event_loop(asyncio.new_event_loop())
    faust.Worker(worker.app, quiet=True, override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
