"""The ingest HTTP API: articles in, rules and subscriptions managed, all published to Kafka.

An adapter: it authenticates, decodes and validates (with `schemas` and the matcher engine),
publishes, and answers. A 2xx means Kafka acknowledged the record (acks=all).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from starlette.routing import Match

from schemas.api import (
    ArticleReceipt,
    ArticleStatus,
    BatchReceipt,
    SecretInfo,
    SubscriptionCreated,
    SubscriptionView,
    WatchlistApplied,
)
from schemas.article import ArticleIn
from schemas.common import Slug
from schemas.delivery import DeadLetter
from schemas.health import EndpointStatus
from schemas.replay import ReplayAccepted, ReplayIn, ReplayRequest
from schemas.subscription import SECRET_PREFIX, SigningSecret, Subscription, SubscriptionIn
from schemas.watchlist import RuleRecord, Watchlist, WatchlistRule
from services.common.compacted import CompactedView
from services.common.dead_letters import DeadLetterView
from services.common.metrics import exposition
from services.common.ssrf import UrlPolicy, UrlRefused, check_url
from services.common.topics import record_key
from services.ingest.auth import ApiKeys
from services.ingest.bodies import (
    JSON,
    NDJSON,
    YAML,
    BodyLimit,
    decode_text,
    openapi_body,
    parse_json,
    require_media_type,
    validate_model,
)
from services.ingest.intake import ArticleIntake
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.text_article import article_in_from_text
from services.ingest.views import RecentArticleIds
from services.matcher.engine.compile import rule_ast
from services.matcher.engine.errors import RuleCompileError, RuleError
from services.matcher.engine.loading import parse_watchlist

SECRET_BYTES = 32
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class IngestState:
    """Everything the routes need, wired by `services.ingest.__main__` or a test.

    `intake` is derived from `publisher`, `recent`, `metrics` and `now`; the feed poller
    shares it, so API and feed articles are deduplicated and counted in one place.
    """

    keys: ApiKeys
    publisher: Publisher
    rules: CompactedView[RuleRecord]
    subscriptions: CompactedView[Subscription]
    endpoint_status: CompactedView[EndpointStatus]
    dead_letters: DeadLetterView
    recent: RecentArticleIds
    metrics: IngestMetrics
    registry: CollectorRegistry
    url_policy: UrlPolicy
    max_batch: int
    max_body_bytes: int
    secret_overlap: timedelta
    kafka_ready: Callable[[], Awaitable[bool]]
    now: Callable[[], datetime]
    intake: ArticleIntake = field(init=False)

    def __post_init__(self) -> None:
        self.intake = ArticleIntake(self.publisher, self.recent, self.metrics.articles, self.now)


_SLUG = TypeAdapter(Slug)


def require_slug(value: str, what: str) -> None:
    """A 422 unless `value` is a valid id ([a-z0-9][a-z0-9._-]{0,63})."""
    try:
        _SLUG.validate_python(value)
    except ValidationError as exc:
        raise HTTPException(
            422, f"{what} {value!r} must match [a-z0-9][a-z0-9._-]{{0,63}}"
        ) from exc


def _rule_errors(errors: list[RuleError]) -> list[dict[str, Any]]:
    return [
        {"rule_id": e.rule_id, "where": e.where, "position": e.position, "message": e.message}
        for e in errors
    ]


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def subscription_view(sub: Subscription, status: EndpointStatus | None = None) -> SubscriptionView:
    """The API's view of a subscription: secrets reduced to a prefix, delivery status added."""
    return SubscriptionView(
        id=sub.id,
        tenant=sub.tenant,
        url=sub.url,
        description=sub.description,
        filter=sub.filter,
        enabled=sub.enabled,
        disabled_reason=sub.disabled_reason,
        alerts_per_request=sub.alerts_per_request,
        secrets=[
            SecretInfo(
                prefix=s.secret.get_secret_value()[:10] + "…",
                created_at=s.created_at,
                expires_at=s.expires_at,
            )
            for s in sub.secrets
        ],
        created_at=sub.created_at,
        updated_at=sub.updated_at,
        status=status,
    )


def tenant_of(request: Request) -> str:
    """The caller's tenant, from its bearer API key; a 401 without a valid one."""
    state: IngestState = request.app.state.ingest
    tenant = state.keys.tenant_for(request.headers.get("authorization"))
    if tenant is None:
        raise HTTPException(
            401,
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


# Module level: FastAPI resolves the (string) annotations of routes in this module's globals.
Tenant = Annotated[str, Depends(tenant_of)]


def create_app(state: IngestState) -> FastAPI:
    """The FastAPI application over `state`."""
    app = FastAPI(
        title="newsalert ingest",
        version="1",
        description="Articles in; watchlist rules and webhook subscriptions managed. "
        "Authenticate with `Authorization: Bearer <API key>`.",
    )
    app.state.ingest = state

    def view_of(sub: Subscription) -> SubscriptionView:
        return subscription_view(sub, state.endpoint_status.get(record_key(sub.tenant, sub.id)))

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        route = "unmatched"
        for candidate in app.router.routes:
            if candidate.matches(request.scope)[0] == Match.FULL:
                route = getattr(candidate, "path", "unmatched")
                break
        response: Response = await call_next(request)
        # Any word is a method to HTTP: a client must not be able to mint new series.
        method = request.method if request.method in _METHODS else "other"
        state.metrics.requests.labels(route, method, str(response.status_code)).inc()
        state.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
        return response

    # -- articles ---------------------------------------------------------------------------

    # One intake for the routes and the feed poller: dedupe, publish, count (intake.py).
    accept = state.intake.accept
    refused = state.intake.refused

    async def accept_one(item: ArticleIn) -> ArticleReceipt:
        """`accept` for a request of one article: 413, saying why, if it is refused."""
        receipt = await accept(item)
        if receipt.status is ArticleStatus.REFUSED:
            # Located as FastAPI locates a field of the request body: under "body".
            raise HTTPException(413, [{**e, "loc": ["body", *e["loc"]]} for e in receipt.errors])
        return receipt

    @app.post(
        "/v1/articles",
        status_code=202,
        response_model=ArticleReceipt | BatchReceipt,
        summary="Submit one article (JSON) or a batch (NDJSON, one article per line)",
        openapi_extra=openapi_body((JSON, ArticleIn), (NDJSON, ArticleIn)),
        responses={207: {"model": BatchReceipt, "description": "Some lines were refused"}},
    )
    async def post_article(request: Request, _tenant: Tenant) -> Any:
        media = require_media_type(request, JSON, NDJSON)
        text = decode_text(await request.body())
        if media == JSON:
            try:
                item = validate_model(ArticleIn, parse_json(text))
            except HTTPException:
                refused("invalid")
                raise
            return await accept_one(item)
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if not lines:
            refused("empty")
            raise HTTPException(400, "the NDJSON batch has no lines")
        if len(lines) > state.max_batch:
            refused("batch_too_large")
            raise HTTPException(413, f"a batch holds at most {state.max_batch} articles")
        receipts: list[ArticleReceipt | None] = []
        valid: list[tuple[int, ArticleIn]] = []
        for number, line in lines:
            try:
                item = validate_model(ArticleIn, parse_json(line, f"line {number}"), "")
            except HTTPException as exc:
                refused("invalid")
                detail = exc.detail if isinstance(exc.detail, list) else [{"msg": exc.detail}]
                receipts.append(
                    ArticleReceipt(line=number, status=ArticleStatus.REFUSED, errors=detail)
                )
                continue
            valid.append((len(receipts), item))
            receipts.append(None)
        # All lines in flight at once: the producer batches them into a few requests, where
        # one-by-one each line would wait a full acks=all round trip (~10 ms).
        accepted = await asyncio.gather(*(accept(item, lines[i][0]) for i, item in valid))
        for (index, _), receipt in zip(valid, accepted, strict=True):
            receipts[index] = receipt
        done = [r for r in receipts if r is not None]
        counts = {s: sum(r.status == s for r in done) for s in ArticleStatus}
        batch = BatchReceipt(
            accepted=counts[ArticleStatus.ACCEPTED],
            duplicates=counts[ArticleStatus.DUPLICATE],
            refused=counts[ArticleStatus.REFUSED],
            items=done,
        )
        status = 202 if not batch.refused else 422 if batch.refused == len(done) else 207
        return JSONResponse(batch.model_dump(mode="json"), status_code=status)

    @app.post(
        "/v1/articles/text",
        status_code=202,
        response_model=ArticleReceipt,
        summary="Submit one scraped plain-text article (headline on the first line)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "parameters": [
                {"name": "url", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "language",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
        },
    )
    async def post_text_article(request: Request, _tenant: Tenant) -> ArticleReceipt:
        require_media_type(request, "text/plain")
        text = decode_text(await request.body())
        try:
            item = article_in_from_text(
                text,
                url=request.query_params.get("url"),
                language=request.query_params.get("language"),
            )
        except ValueError as exc:
            refused("invalid")
            raise HTTPException(422, str(exc)) from exc
        return await accept_one(item)

    # -- rules ------------------------------------------------------------------------------

    def rule_or_404(tenant: str, rule_id: str) -> RuleRecord:
        record = state.rules.get(record_key(tenant, rule_id))
        if record is None:
            raise HTTPException(404, f"no rule {rule_id!r}")
        return record

    def checked(tenant: str, rule: WatchlistRule) -> RuleRecord:
        try:
            rule_ast(tenant, rule)
        except RuleCompileError as exc:
            raise HTTPException(422, {"errors": _rule_errors([exc.error])}) from exc
        return RuleRecord(tenant=tenant, rule=rule, version=rule.version(), updated_at=state.now())

    @app.get("/v1/rules", response_model=list[RuleRecord], summary="List your rules")
    async def list_rules(tenant: Tenant) -> list[RuleRecord]:
        return state.rules.values(f"{tenant}/")

    @app.get("/v1/rules/{rule_id}", response_model=RuleRecord, summary="Read one rule")
    async def get_rule(rule_id: str, tenant: Tenant) -> RuleRecord:
        return rule_or_404(tenant, rule_id)

    @app.put(
        "/v1/rules/{rule_id}",
        response_model=RuleRecord,
        summary="Create or replace a rule (validated by the matcher before publishing)",
        openapi_extra=openapi_body((JSON, WatchlistRule)),
        responses={201: {"model": RuleRecord, "description": "Created"}},
    )
    async def put_rule(rule_id: str, request: Request, tenant: Tenant) -> Any:
        require_media_type(request, JSON)
        data = parse_json(decode_text(await request.body()))
        if isinstance(data, dict) and data.setdefault("id", rule_id) != rule_id:
            raise HTTPException(422, f"the body's id {data['id']!r} differs from the path's")
        rule = validate_model(WatchlistRule, data)
        record = checked(tenant, rule)
        key = record_key(tenant, rule_id)
        previous = state.rules.get(key)
        if previous is not None and previous.rule == rule:
            return previous
        await state.publisher.publish_rule(tenant, rule_id, record)
        state.rules.apply(key, record)
        return JSONResponse(record.model_dump(mode="json"), status_code=200 if previous else 201)

    @app.delete("/v1/rules/{rule_id}", status_code=204, summary="Delete a rule")
    async def delete_rule(rule_id: str, tenant: Tenant) -> Response:
        rule_or_404(tenant, rule_id)
        await state.publisher.publish_rule(tenant, rule_id, None)
        state.rules.apply(record_key(tenant, rule_id), None)
        return Response(status_code=204)

    @app.post(
        "/v1/watchlists:apply",
        response_model=WatchlistApplied,
        summary="Apply a whole watchlist file (YAML or JSON): all rules valid or none published",
        openapi_extra={
            **openapi_body((JSON, Watchlist)),
            "parameters": [
                {
                    "name": "prune",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "boolean"},
                    "description": "Also delete your rules that the file does not hold.",
                },
            ],
        },
    )
    async def apply_watchlist(request: Request, tenant: Tenant) -> WatchlistApplied:
        require_media_type(request, JSON, YAML, "application/x-yaml", "text/yaml")
        loaded = parse_watchlist(decode_text(await request.body()), default_tenant=tenant)
        if loaded.tenant != tenant:
            raise HTTPException(
                403, f"the watchlist names tenant {loaded.tenant!r}; your key is for {tenant!r}"
            )
        if loaded.errors:
            raise HTTPException(422, {"errors": _rule_errors(loaded.errors)})
        prune = request.query_params.get("prune", "false").lower() in ("1", "true", "yes")
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        for rule in loaded.rules:
            key = record_key(tenant, rule.id)
            previous = state.rules.get(key)
            if previous is not None and previous.rule == rule:
                unchanged.append(rule.id)
                continue
            record = RuleRecord(
                tenant=tenant, rule=rule, version=rule.version(), updated_at=state.now()
            )
            await state.publisher.publish_rule(tenant, rule.id, record)
            state.rules.apply(key, record)
            (updated if previous else created).append(rule.id)
        deleted: list[str] = []
        if prune:
            keep = {r.id for r in loaded.rules}
            for record in state.rules.values(f"{tenant}/"):
                if record.rule.id not in keep:
                    await state.publisher.publish_rule(tenant, record.rule.id, None)
                    state.rules.apply(record_key(tenant, record.rule.id), None)
                    deleted.append(record.rule.id)
        return WatchlistApplied(
            tenant=tenant, created=created, updated=updated, unchanged=unchanged, deleted=deleted
        )

    # -- subscriptions ----------------------------------------------------------------------

    def subscription_or_404(tenant: str, subscription_id: str) -> Subscription:
        found = state.subscriptions.get(record_key(tenant, subscription_id))
        if found is None:
            raise HTTPException(404, f"no subscription {subscription_id!r}")
        return found

    async def store(sub: Subscription) -> None:
        await state.publisher.publish_subscription(sub.tenant, sub.id, sub)
        state.subscriptions.apply(record_key(sub.tenant, sub.id), sub)

    @app.get(
        "/v1/subscriptions",
        response_model=list[SubscriptionView],
        summary="List your subscriptions",
    )
    async def list_subscriptions(tenant: Tenant) -> list[SubscriptionView]:
        return [view_of(s) for s in state.subscriptions.values(f"{tenant}/")]

    @app.get(
        "/v1/subscriptions/{subscription_id}",
        response_model=SubscriptionView,
        summary="Read one subscription",
    )
    async def get_subscription(subscription_id: str, tenant: Tenant) -> SubscriptionView:
        return view_of(subscription_or_404(tenant, subscription_id))

    @app.put(
        "/v1/subscriptions/{subscription_id}",
        response_model=SubscriptionView,
        summary="Create or replace a webhook subscription; the secret is shown once, at creation",
        openapi_extra=openapi_body((JSON, SubscriptionIn)),
        responses={201: {"model": SubscriptionCreated, "description": "Created, with its secret"}},
    )
    async def put_subscription(subscription_id: str, request: Request, tenant: Tenant) -> Any:
        require_media_type(request, JSON)
        body = validate_model(SubscriptionIn, parse_json(decode_text(await request.body())))
        require_slug(subscription_id, "subscription id")
        try:
            check_url(body.url, state.url_policy)
        except UrlRefused as exc:
            raise HTTPException(422, f"url refused: {exc}") from exc
        now = state.now()
        previous = state.subscriptions.get(record_key(tenant, subscription_id))
        if previous is not None:
            sub = previous.model_copy(update={**body.model_dump(), "updated_at": now})
            sub = Subscription.model_validate(sub.model_dump())
            await store(sub)
            return view_of(sub)
        secret = new_secret()
        sub = Subscription(
            id=subscription_id,
            tenant=tenant,
            url=body.url,
            description=body.description,
            filter=body.filter,
            enabled=body.enabled,
            alerts_per_request=body.alerts_per_request,
            secrets=[SigningSecret(secret=SecretStr(secret), created_at=now)],
            created_at=now,
            updated_at=now,
        )
        await store(sub)
        created = SubscriptionCreated(subscription=view_of(sub), secret=secret)
        return JSONResponse(created.model_dump(mode="json"), status_code=201)

    @app.post(
        "/v1/subscriptions/{subscription_id}/rotate-secret",
        response_model=SubscriptionCreated,
        summary="Add a new signing secret; the old ones keep signing until the overlap ends",
    )
    async def rotate_secret(subscription_id: str, tenant: Tenant) -> SubscriptionCreated:
        sub = subscription_or_404(tenant, subscription_id)
        now = state.now()
        secret = new_secret()
        # Old secrets sign alongside the new one until they expire, so receivers can switch.
        kept = [
            s.model_copy(update={"expires_at": s.expires_at or now + state.secret_overlap})
            for s in sub.secrets
            if s.expires_at is None or s.expires_at > now
        ][-3:]
        rotated = sub.model_copy(
            update={
                "secrets": [*kept, SigningSecret(secret=SecretStr(secret), created_at=now)],
                "updated_at": now,
            }
        )
        await store(rotated)
        return SubscriptionCreated(subscription=view_of(rotated), secret=secret)

    @app.delete(
        "/v1/subscriptions/{subscription_id}", status_code=204, summary="Delete a subscription"
    )
    async def delete_subscription(subscription_id: str, tenant: Tenant) -> Response:
        subscription_or_404(tenant, subscription_id)
        await state.publisher.publish_subscription(tenant, subscription_id, None)
        state.subscriptions.apply(record_key(tenant, subscription_id), None)
        return Response(status_code=204)

    # -- operations -------------------------------------------------------------------------

    # -- dead letters and replays -------------------------------------------------------------

    @app.get(
        "/v1/dead-letters",
        response_model=list[DeadLetter],
        summary="Alerts given up on, newest first (optionally of one subscription)",
    )
    async def list_dead_letters(
        tenant: Tenant, subscription_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit must be between 1 and 1000")
        return state.dead_letters.listing(tenant, subscription_id, limit)

    @app.post(
        "/v1/replays",
        status_code=202,
        response_model=ReplayAccepted,
        summary="Deliver again: one dead letter, or every alert of a subscription in a range",
        openapi_extra=openapi_body((JSON, ReplayIn)),
    )
    async def post_replay(request: Request, tenant: Tenant) -> ReplayAccepted:
        require_media_type(request, JSON)
        body = validate_model(ReplayIn, parse_json(decode_text(await request.body())))
        subscription_or_404(tenant, body.subscription_id)
        if body.alert_id is not None and (
            state.dead_letters.get(tenant, body.subscription_id, body.alert_id) is None
        ):
            raise HTTPException(
                404, f"no dead letter of alert {body.alert_id} for this subscription"
            )
        replay = ReplayRequest(
            replay_id="replay_" + secrets.token_hex(16),
            tenant=tenant,
            subscription_id=body.subscription_id,
            alert_id=body.alert_id,
            since=body.since,
            until=body.until,
            requested_at=state.now(),
        )
        await state.publisher.publish_replay(replay)
        return ReplayAccepted(replay_id=replay.replay_id)

    @app.get("/healthz", summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Ready: Kafka reachable and views loaded")
    async def readyz() -> JSONResponse:
        views_ready = (
            state.rules.ready.is_set()
            and state.subscriptions.ready.is_set()
            and state.recent.ready.is_set()
        )
        kafka = await state.kafka_ready()
        ok = views_ready and kafka
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "kafka": kafka, "views": views_ready},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition(state.registry)
        return Response(body, media_type=content_type)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            models: list[type[BaseModel]] = [ArticleIn, WatchlistRule, Watchlist, SubscriptionIn]
            for model in models:
                found = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, max_bytes=state.max_body_bytes)
    return app
