"""Request bodies: a size limit enforced before parsing, and strict JSON/NDJSON decoding.

Every failure becomes a 4xx whose message says what is wrong and where (byte offset, line,
column), never a 500: invalid UTF-8, JSON nested past the parser's depth, numbers too long
to convert, NUL characters and lone surrogates (refused by the schemas), wrong content types.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON = "application/json"
NDJSON = "application/x-ndjson"
YAML = "application/yaml"

M = TypeVar("M", bound=BaseModel)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, declared or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except* _TooLarge:
            # except*: middleware running the app in a task group wraps it in an ExceptionGroup.
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"request body is larger than {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case ('' when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_media_type(request: Request, *allowed: str) -> str:
    """The media type if it is one of `allowed`, else a 415 naming the allowed ones."""
    found = media_type(request)
    if found not in allowed:
        raise HTTPException(
            415, f"content type {found or '(none)'!r} is not accepted: use {' or '.join(allowed)}"
        )
    return found


def decode_text(raw: bytes) -> str:
    """UTF-8 text, or a 400 that names the offset of the first invalid byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(
            400, f"body is not valid UTF-8: invalid byte at offset {exc.start}"
        ) from exc


def parse_json(text: str, where: str = "body") -> Any:
    """Parse one JSON document with errors that say where it went wrong."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPException(
            400, f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise HTTPException(400, f"{where} is nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise HTTPException(400, f"{where} holds a number that is too long: {exc}") from exc


# The body was valid UTF-8, so a string pydantic cannot read as Unicode came from a JSON
# escape of half a surrogate pair: say so rather than "unable to parse raw data".
_LONE_SURROGATE = (
    "text must be valid Unicode: it holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"
)


def validation_detail(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """Pydantic errors as `{loc, msg, type}` items, JSON-safe (no input echoed back)."""
    return [
        {
            "loc": [*(p for p in prefix.split(".") if p), *map(str, e["loc"])],
            "msg": _LONE_SURROGATE if e["type"] == "string_unicode" else e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validate_model(model: type[M], data: Any, where: str = "body") -> M:
    """Validate parsed JSON against `model`, or a 422 listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, validation_detail(exc, where)) from exc


def openapi_body(*content: tuple[str, type[BaseModel]]) -> dict[str, Any]:
    """`openapi_extra` declaring a request body we parse ourselves."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
                for media, model in content
            },
        }
    }
