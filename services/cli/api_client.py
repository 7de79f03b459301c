"""A small synchronous client of the ingest HTTP API, on the standard library's `http.client`.

One keep-alive connection per client. Every failure is an `ApiError` whose message is one
line a person can act on, and whose `exit_code` is what the command returns: 1 when the API
cannot be reached, refuses the key or fails (5xx), 2 when it refuses the request itself (4xx:
the input is wrong). The key travels only in the Authorization header; no message holds it.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_TIMEOUT_S = 60.0
USER_AGENT = "newsalert-cli/1"


class ApiError(Exception):
    """A request that did not get the answer it needed.

    Attributes:
        message: One line saying what went wrong.
        lines: Details, one per line (e.g. every error of a refused watchlist).
        exit_code: What the command returns for it.
    """

    exit_code = 1

    def __init__(self, message: str, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.lines = lines or []


class ApiUnreachable(ApiError):
    """No answer: connection refused, unknown host, timeout, connection dropped."""


class KeyRefused(ApiError):
    """The API answered 401: the key is unknown (or missing)."""


class ServerFailed(ApiError):
    """The API answered 5xx, or something that is not an answer of this API."""


class RequestRefused(ApiError):
    """The API answered 4xx (other than 401): the request is wrong; `detail` says why."""

    exit_code = 2

    def __init__(self, status: int, detail: Any) -> None:
        lines = describe_detail(detail)
        phrase = _phrase(status)
        if len(lines) == 1:
            super().__init__(f"{lines[0]} ({status} {phrase})")
        else:
            super().__init__(f"the API refused the request ({status} {phrase}):", lines)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: its status and its body (parsed JSON, text, or None when empty)."""

    status: int
    body: Any

    @property
    def detail(self) -> Any:
        """FastAPI's `detail` of an error body, or the whole body when it has none."""
        if isinstance(self.body, dict) and "detail" in self.body:
            return self.body["detail"]
        return self.body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def describe_detail(detail: Any) -> list[str]:
    """An error body's `detail` as readable lines.

    Handles the API's three shapes: a message, a list of validation errors (`loc`, `msg`),
    and `{"errors": [...]}` of rule errors (`rule_id`, `where`, `position`, `message`).
    """
    if detail is None or detail == "":
        return ["no detail given"]
    if isinstance(detail, str):
        return [detail]
    if isinstance(detail, dict) and isinstance(detail.get("errors"), list):
        return [_rule_error(e) for e in detail["errors"]]
    if isinstance(detail, list) and all(isinstance(e, dict) for e in detail):
        return [_validation_error(e) for e in detail]
    return [json.dumps(detail, ensure_ascii=False)]


def _rule_error(error: Any) -> str:
    if not isinstance(error, dict):
        return json.dumps(error, ensure_ascii=False)
    position = error.get("position")
    at = f" at position {position}" if position is not None else ""
    return f"rule {error.get('rule_id')}: {error.get('where')}{at}: {error.get('message')}"


def _validation_error(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error.get("loc") or [] if str(p))
    message = str(error.get("msg", json.dumps(error, ensure_ascii=False)))
    return f"{loc}: {message}" if loc else message


def path_part(value: str) -> str:
    """`value` escaped as one path segment (an id cannot reach another route)."""
    return quote(value, safe="")


class ApiClient:
    """Requests to one ingest API with one API key, over one reused connection."""

    def __init__(self, url: str, key: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the API URL must be http://host[:port] or https://...: {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._key = key
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ApiClient({self.url!r})"  # never the key

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._reused = False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout_s
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout_s
                )
        return self._conn

    def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
    ) -> Reply:
        """One request; the reply whatever its status, except the ones nobody can act on.

        Raises:
            ApiUnreachable: no answer (connection refused, timeout, unknown host, ...).
            KeyRefused: a 401.
            ServerFailed: a 5xx.
        """
        target = self._base + path + (f"?{urlencode(query)}" if query else "")
        headers = {
            "Authorization": f"Bearer {self._key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if content_type is not None:
            headers["Content-Type"] = content_type
        status, media, raw = self._exchange(method, target, body, headers)
        reply = Reply(status, _decode(raw, media))
        if status == 401:
            raise KeyRefused(
                "the API key was refused (401): set NEWSALERT_API_KEY or --api-key to a key "
                "that `newsalert keys new` made and the ingest service knows"
            )
        if status >= 500:
            raise ServerFailed(
                f"the ingest API at {self.url} failed ({status} {_phrase(status)}): "
                + "; ".join(describe_detail(reply.detail))
            )
        return reply

    def _exchange(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        # A kept-alive connection the server has since closed fails on first use: that one
        # request is sent again, once, on a new connection (it never reached the server).
        for attempt in (1, 2):
            reused = self._reused
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise ApiUnreachable(
                    f"cannot reach the ingest API at {self.url}: the connection was closed "
                    f"({exc.__class__.__name__})"
                ) from exc
            except TimeoutError as exc:
                self.close()
                raise ApiUnreachable(
                    f"cannot reach the ingest API at {self.url}: "
                    f"no answer within {self.timeout_s:g} s"
                ) from exc
            except OSError as exc:
                self.close()
                reason = exc.strerror or str(exc) or exc.__class__.__name__
                raise ApiUnreachable(
                    f"cannot reach the ingest API at {self.url}: {reason}"
                ) from exc
            except http.client.HTTPException as exc:
                self.close()
                raise ServerFailed(
                    f"the ingest API at {self.url} sent something that is not HTTP: "
                    f"{exc.__class__.__name__}"
                ) from exc
            if response.will_close:
                self.close()
            else:
                self._reused = True
            media = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return response.status, media, raw
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """One request that must succeed: its parsed body.

        Raises:
            RequestRefused: a 4xx; plus everything `send` raises.
        """
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            content_type = "application/json"
        reply = self.send(method, path, body=body, content_type=content_type, query=query)
        if reply.status >= 400:
            raise RequestRefused(reply.status, reply.detail)
        return reply.body


def _decode(raw: bytes, media: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
