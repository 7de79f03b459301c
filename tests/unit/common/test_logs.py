"""Log lines are JSON and carry the ids that tie the services together."""

from __future__ import annotations

import json
import logging

from services.common.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "services.matcher", logging.INFO, "x.py", 1, "alert %s", ("made",), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_log_line_is_one_json_object_with_the_extra_fields() -> None:
    line = JsonFormatter("matcher").format(_record(article_id="a1", alert_id="alert_1"))
    parsed = json.loads(line)
    assert parsed["message"] == "alert made"
    assert parsed["service"] == "matcher"
    assert parsed["level"] == "info"
    assert (parsed["article_id"], parsed["alert_id"]) == ("a1", "alert_1")
    assert "\n" not in line


def test_an_exception_is_in_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter("ingest").format(record))
    assert "ValueError: boom" in parsed["exception"]
