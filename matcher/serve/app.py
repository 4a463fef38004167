"""The ASGI application of ``matcher serve``: :func:`create_app`.

Routes (the README's "Service" section documents them; ``GET /openapi.json`` describes them):

* ``POST /v1/match``: an image (raw body or one multipart file) answered with the scan's records;
* ``POST /v1/lookup``: a batch of hashes answered one by one, in order;
* ``POST /v1/hash``: ``matcher hash``'s records of an image (no index);
* ``GET /v1/index``, ``GET /healthz``, ``GET /metrics``, ``GET /openapi.json``;
* HMA 2.0's ``GET /m/raw_lookup``, ``GET``/``POST /m/lookup`` and ``GET /m/index/status``.

Every route but ``/healthz`` and ``/openapi.json`` needs an API key when auth is on
(``Authorization: Bearer KEY`` or ``X-API-Key: KEY``). Every request, refused ones too, is one line
of the audit log. Errors are JSON ``{"error": KIND, "message": TEXT}`` with a 4xx status (503 when
the service is busy or a request ran out of time); a 500 would be a defect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..batch import set_search_threads
from ..errors import HashFormatError, MatcherError, UnknownAlgorithmError, UsageError
from ..hashing import HashOptions
from ..scan.options import FileResult, ScanOptions
from ..scan.scanner import HashedEntry
from ..scan_records import DIGEST_ALGORITHMS, ScanRecord
from .audit import AuditLog
from .config import CONFIG_ENVIRONMENT, ServeConfig
from .http import ClientError, Reply, read_json, read_upload_bytes
from .keys import KeyStore
from .live import LiveIndex, Snapshot
from .metrics import Metrics
from .openapi import openapi_schema
from .service import (
    Batcher,
    Busy,
    LookupAnswer,
    LookupQuery,
    finish_uploads,
    hash_upload,
    lookup_batch,
    parse_query,
    read_upload,
    upload_status,
)

__all__ = ["SWITCH_INTERVAL", "ServeState", "create_app", "create_app_from_environment"]

log = logging.getLogger(__name__)

#: The interpreter's thread switch interval (seconds) in a ``matcher serve`` process (Python's
#: default is 0.005). The event loop and the batch thread take turns holding the interpreter lock:
#: when a search ends while the loop is busy, the batch thread waits up to the switch interval to hand
#: its answers back, and every request of the next batch waits with it. Measured at 10M records and 8
#: clients (machine loaded by other jobs): 1,350-1,470 lookups/s at 5 ms, 1,860-2,100 at 0.5 ms.
SWITCH_INTERVAL = 0.0005

Handler = Callable[[Request, "ServeState"], Awaitable[Reply]]


class ServeState:
    """Everything the routes share: the configuration, the live index, keys, audit log, metrics and
    the batchers. Built by :func:`create_app` (the index is opened there: a bad index fails at once)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        options = ScanOptions(
            algorithms=config.algorithms or None,
            max_distances=dict(config.max_distances),
            hash_options=HashOptions(max_pixels=config.max_pixels, max_file_bytes=config.max_body_bytes),
        )
        self.live = LiveIndex(config.index, options)
        self.keys = KeyStore(config.keys_path) if config.auth else None
        self.audit = AuditLog(config.audit_path)
        self.metrics = Metrics(config.metrics_dir)
        # the batch threads search with search_threads threads if set (an OpenMP setting is per thread)
        setup = None if config.search_threads is None else functools.partial(set_search_threads, config.search_threads)
        self.lookups: Batcher[list[LookupQuery], list[LookupAnswer]] = Batcher(
            lookup_batch, config.max_batch, config.max_pending, size=len, thread_setup=setup
        )
        self.uploads: Batcher[HashedEntry, FileResult] = Batcher(
            finish_uploads, 64, config.max_pending, thread_setup=setup
        )
        self.hashing = anyio.CapacityLimiter(config.hash_threads)
        self.started = time.time()

    async def publish_metrics(self, interval: float = 1.0) -> None:
        """Publish this worker's metrics to the shared directory every ``interval`` seconds (in a
        thread), for the ``/metrics`` of the other workers."""
        while True:
            await asyncio.sleep(interval)
            await anyio.to_thread.run_sync(self.metrics.publish)

    async def watch(self) -> None:
        """Check for a new index generation every ``reload_interval`` seconds (in a thread)."""
        while True:
            await asyncio.sleep(self.config.reload_interval)
            before = self.live.failed_reloads
            switched = await anyio.to_thread.run_sync(self.live.check)
            if switched:
                self.metrics.count("matcher_index_reloads_total", outcome="switched")
            elif self.live.failed_reloads != before:
                self.metrics.count("matcher_index_reloads_total", outcome="failed")

    def close(self) -> None:
        """Close the index (once in-flight requests end), the batch threads and the audit log."""
        self.lookups.close()
        self.uploads.close()
        self.live.close()
        self.audit.close()


# -- the request wrapper: auth, errors, metrics, audit ------------------------------------------------


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


def _error(status: int, kind: str, message: str, result: str = "error", **extra: Any) -> Reply:
    return Reply(status, {"error": kind, "message": message, **extra}, result, message=message)


def _audit(
    state: ServeState, request: Request, route: str, key: str | None, client: str | None, reply: Reply, elapsed: float
) -> None:
    state.audit.write(
        key=key,
        client=client,
        method=request.method,
        route=route,
        status=reply.status,
        result=reply.result,
        hashes=list(reply.hashes),
        matches=list(reply.matches),
        generation=reply.generation,
        ms=round(elapsed * 1000, 2),
        message=reply.message,
    )


def _route(path: str, route_name: str, handler: Handler, state: ServeState, methods: list[str], auth: bool) -> Route:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        key_id: str | None = None
        try:
            if auth and state.keys is not None:
                presented = _presented_key(request)
                if not presented:
                    raise ClientError(401, "unauthorized", "an API key is required (Authorization: Bearer KEY)")
                key = state.keys.check(presented)  # a stat and a SHA-256: microseconds
                if key is None:
                    raise ClientError(401, "unauthorized", "the API key is not valid (unknown, malformed or revoked)")
                key_id = key.id
            async with asyncio.timeout(state.config.request_timeout):  # no task per request, as wait_for makes
                reply = await handler(request, state)
        except ClientError as exc:
            result = "unauthorized" if exc.status == 401 else "error"
            reply = _error(exc.status, exc.kind, exc.message, result)
        except Busy as exc:
            reply = _error(503, "busy", str(exc))
        except TimeoutError:
            reply = _error(
                503, "timeout", f"the request took longer than {state.config.request_timeout:g} seconds; try again"
            )
        except (UnknownAlgorithmError, HashFormatError, UsageError) as exc:
            reply = _error(400, "bad_request", exc.args[0] if exc.args else str(exc))
        except MatcherError as exc:  # the index failed: not the client's fault, and not a clean answer
            log.error("%s: %s", route_name, exc)
            reply = _error(503, "index_failure", f"the index could not answer: {exc}")
        except Exception:  # noqa: BLE001 - a defect: log it, answer 500, never a clean answer
            log.exception("%s: internal error", route_name)
            reply = _error(500, "internal", "internal error; the request was not answered")
        elapsed = time.perf_counter() - started
        state.metrics.count("matcher_requests_total", route=route_name, status=str(reply.status))
        state.metrics.observe(route_name, elapsed)
        if reply.status >= 400:
            kind = reply.body.get("error", "error") if isinstance(reply.body, dict) else "error"
            state.metrics.count("matcher_errors_total", kind=str(kind))
        client = request.client.host if request.client else None
        try:
            _audit(state, request, route_name, key_id, client, reply, elapsed)
        except OSError as exc:  # no answer goes out unaudited
            log.error("the audit log %s cannot be written (%s): answering 503", state.audit.path, exc)
            reply = _error(503, "audit_failure", "the service cannot write its audit log; try again later")
        if reply.text:
            return PlainTextResponse(reply.body, reply.status, media_type="text/plain; version=0.0.4; charset=utf-8")
        return JSONResponse(reply.body, reply.status)

    return Route(path, endpoint, methods=methods, name=route_name)


# -- lookups ----------------------------------------------------------------------------------------


async def _lookup(state: ServeState, snapshot: Snapshot, queries: list[LookupQuery]) -> list[LookupAnswer]:
    if not queries:
        return []
    answers = await state.lookups.submit(snapshot, queries)
    state.metrics.count("matcher_lookups_total", len(answers))
    state.metrics.count("matcher_matches_total", sum(a.status == "match" for a in answers), kind="lookup")
    return answers


async def v1_lookup(request: Request, state: ServeState) -> Reply:
    """``POST /v1/lookup``: ``{"hashes": [{"algorithm", "hex", "quality"?, "max_distance"?}, ...]}``."""
    config = state.config
    data = await read_json(request, config.max_body_bytes, config.body_timeout)
    items = data.get("hashes") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ClientError(400, "bad_request", 'the body must be {"hashes": [{"algorithm": "pdq", "hex": "..."}, ...]}')
    if len(items) > config.max_lookup_hashes:
        raise ClientError(
            413, "too_many", f"{len(items)} hashes in one request; the limit is {config.max_lookup_hashes}"
        )
    with state.live.lease() as snapshot:
        parsed: list[LookupQuery | str] = []
        for item in items:
            try:
                parsed.append(parse_query(item, snapshot))
            except (UsageError, HashFormatError, UnknownAlgorithmError) as exc:
                parsed.append(exc.args[0] if exc.args else str(exc))
        answers = iter(await _lookup(state, snapshot, [q for q in parsed if isinstance(q, LookupQuery)]))
        results: list[dict[str, Any]] = []
        for item, query in zip(items, parsed):
            if isinstance(query, str):
                echo = item if isinstance(item, dict) else {}
                results.append(
                    {
                        "algorithm": echo.get("algorithm") if isinstance(echo.get("algorithm"), str) else None,
                        "hex": echo.get("hex") if isinstance(echo.get("hex"), str) else None,
                        "status": "error",
                        "error": query,
                    }
                )
            else:
                results.append(next(answers).to_dict())
        hashes = tuple(f"{r['algorithm']}:{r['hex']}" for r in results if r["status"] != "error")
        matched = tuple(m["record"] for r in results for m in r.get("matches", ()))
        statuses = {r["status"] for r in results}
        result = "match" if "match" in statuses else "error" if statuses == {"error"} else "no_match"
        return Reply(
            200,
            {"index_generation": snapshot.generation, "results": results},
            result,
            hashes,
            matched,
            snapshot.generation,
        )


# -- images -----------------------------------------------------------------------------------------


async def _match_upload(request: Request, state: ServeState, snapshot: Snapshot) -> tuple[HashedEntry, FileResult]:
    config = state.config
    data, name = await read_upload_bytes(request, config.max_body_bytes, config.body_timeout)
    hashed = await anyio.to_thread.run_sync(read_upload, data, name, snapshot, limiter=state.hashing)
    del data
    result = await state.uploads.submit(snapshot, hashed)
    return hashed, result


def _upload_hashes(records: tuple[ScanRecord, ...]) -> tuple[str, ...]:
    out: list[str] = []
    if records and records[0].sha256:
        out.append(f"sha256:{records[0].sha256}")
    for record in records:
        out.extend(f"{name}:{value}" for name, value in record.hashes.items())
    return tuple(dict.fromkeys(out))


async def v1_match(request: Request, state: ServeState) -> Reply:
    """``POST /v1/match``: the scan's records of the uploaded image."""
    with state.live.lease() as snapshot:
        hashed, result = await _match_upload(request, state, snapshot)
        records = result.records
        status, verdict, message = upload_status(hashed.entry, records)
        state.metrics.count("matcher_matches_total", verdict == "match", kind="image")
        body: dict[str, Any] = {
            "status": verdict if status == 200 else "error",
            "index_generation": snapshot.generation,
            "records": [r.to_dict(snapshot.config.algorithms) for r in records],
        }
        if message is not None:
            body = {"error": verdict, "message": message, **body}
        return Reply(
            status,
            body,
            verdict if status == 200 else "error",
            _upload_hashes(records),
            tuple(dict.fromkeys(m.record for r in records for m in r.matches)),
            snapshot.generation,
            message,
        )


async def v1_hash(request: Request, state: ServeState) -> Reply:
    """``POST /v1/hash``: ``matcher hash``'s records of the uploaded image (no index)."""
    config = state.config
    data, name = await read_upload_bytes(request, config.max_body_bytes, config.body_timeout)
    snapshot = state.live.current
    algorithms = snapshot.config.algorithms
    records = await anyio.to_thread.run_sync(
        hash_upload, data, name, algorithms, snapshot.config.hash_options, limiter=state.hashing
    )
    body = {"records": [r.to_dict(algorithms) for r in records]}
    errors = [r.error for r in records if r.error]
    hashes = tuple(f"{n}:{v}" for r in records for n, v in r.hashes.items())
    if errors:
        message = f"the upload could not be decoded as an image: {errors[0]}"
        return Reply(422, {"error": "undecodable", "message": message, **body}, "error", hashes, message=message)
    if not any(r.hashes for r in records):
        kind = records[0].mime if records and records[0].mime else "unrecognised data"
        message = f"the upload is not an image ({kind}); send an image file"
        return Reply(422, {"error": "not_an_image", "message": message, **body}, "error", hashes, message=message)
    return Reply(200, body, "hashed", hashes)


# -- index, health, metrics, schema -----------------------------------------------------------------


def _index_facts(snapshot: Snapshot) -> dict[str, Any]:
    info = snapshot.info
    return {
        "generation": snapshot.generation,
        "records": info.get("records"),
        "algorithms": info.get("algorithms"),
        "matched_algorithms": list(snapshot.config.algorithms),
        "max_distances": dict(snapshot.config.max_distances),
        "views": info.get("views"),
        "lists": info.get("lists"),
        "updated_at": info.get("updated_at"),
        "format_version": info.get("format_version"),
        "shards": len(info["shards"]) if isinstance(info.get("shards"), list) else None,
    }


async def v1_index(request: Request, state: ServeState) -> Reply:
    """``GET /v1/index``: lists, counts, generation."""
    snapshot = state.live.current
    return Reply(200, _index_facts(snapshot), "ok", generation=snapshot.generation)


async def healthz(request: Request, state: ServeState) -> Reply:
    """``GET /healthz``: ``ok``, or ``degraded`` when a new generation could not be opened."""
    snapshot = state.live.current
    problem = state.live.problem
    verdict = "degraded" if problem else "ok"
    body = {
        "status": verdict,
        "index_generation": snapshot.generation,
        "records": snapshot.info.get("records"),
        "problem": problem.message if problem else None,
        "reloads": state.live.reloads,
        "failed_reloads": state.live.failed_reloads,
        "uptime_seconds": round(time.time() - state.started, 1),
    }
    return Reply(200, body, verdict, generation=snapshot.generation)


async def metrics(request: Request, state: ServeState) -> Reply:
    """``GET /metrics``: Prometheus text."""
    snapshot = state.live.current
    gauges = {
        "matcher_index_generation": float(snapshot.generation),
        "matcher_index_records": float(snapshot.info.get("records") or 0),
        "matcher_index_healthy": 0.0 if state.live.problem else 1.0,
        "matcher_lookup_queue": float(state.lookups.pending),
    }
    return Reply(200, state.metrics.render(gauges), "ok", text=True)


async def openapi(request: Request, state: ServeState) -> Reply:
    """``GET /openapi.json``."""
    return Reply(200, openapi_schema(), "ok")


# -- HMA 2.0 ----------------------------------------------------------------------------------------

#: HMA's signal type names that are not algorithm names here.
HMA_SIGNAL_TYPES = {"video_md5": "md5"}


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if value is None:
        raise ClientError(400, "bad_request", f"{name} is required")
    return value


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise ClientError(400, "bad_request", "invalid boolean parameter - prefer true/false")


async def _hma_signal(request: Request, state: ServeState, snapshot: Snapshot, flags: bool) -> LookupAnswer:
    signal = _required(request, "signal")
    signal_type = _required(request, "signal_type")
    algorithm = HMA_SIGNAL_TYPES.get(signal_type, signal_type)
    if algorithm not in DIGEST_ALGORITHMS and algorithm not in snapshot.config.algorithms:
        raise ClientError(400, "bad_request", f"No such SignalType '{signal_type}'")
    try:
        query = parse_query({"algorithm": algorithm, "hex": signal}, snapshot)
    except (UsageError, HashFormatError, UnknownAlgorithmError) as exc:
        raise ClientError(400, "bad_request", f"invalid signal type: {exc.args[0] if exc.args else exc}") from None
    return (await _lookup(state, snapshot, [replace(query, flags=flags)]))[0]


def _banks(answer_matches: list[tuple[int, str]], known_good: frozenset[int]) -> list[str]:
    return list(dict.fromkeys(name for record, name in answer_matches if record not in known_good))


async def hma_raw_lookup(request: Request, state: ServeState) -> Reply:
    """``GET /m/raw_lookup?signal_type=pdq&signal=HEX[&include_distance=true]``: ``{"matches": [...]}``."""
    include = _bool(request.query_params.get("include_distance", "false"))
    with state.live.lease() as snapshot:
        answer = await _hma_signal(request, state, snapshot, flags=False)  # raw: the index's hits as they are
        ids = [m.record_id for m in answer.matches]
        found: list[Any] = (
            [{"content_id": m.record_id, "distance": str(m.distance)} for m in answer.matches] if include else ids
        )
        hashes = (f"{answer.query.algorithm}:{answer.query.hex}",)
        return Reply(200, {"matches": found}, answer.status, hashes, tuple(ids), snapshot.generation)


async def hma_lookup_get(request: Request, state: ServeState) -> Reply:
    """``GET /m/lookup?signal_type=pdq&signal=HEX``: the matched lists (HMA's banks)."""
    with state.live.lease() as snapshot:
        answer = await _hma_signal(request, state, snapshot, flags=True)
        banks = _banks([(m.record_id, m.list_name) for m in answer.matches], answer.known_good)
        hashes = (f"{answer.query.algorithm}:{answer.query.hex}",)
        ids = tuple(m.record_id for m in answer.matches)
        return Reply(200, banks, answer.status, hashes, ids, snapshot.generation)


async def hma_lookup_post(request: Request, state: ServeState) -> Reply:
    """``POST /m/lookup`` (a multipart file): ``{signal type: [lists]}`` from the scan's matching."""
    with state.live.lease() as snapshot:
        hashed, result = await _match_upload(request, state, snapshot)
        records = result.records
        status, verdict, message = upload_status(hashed.entry, records)
        hashes = _upload_hashes(records)
        if status != 200:
            return Reply(
                status, {"message": message, "error": verdict}, "error", hashes, (), snapshot.generation, message
            )
        out: dict[str, list[str]] = {name: [] for name in snapshot.config.algorithms}
        for record in records:
            if record.status != "match":
                continue
            for m in record.matches:
                lists = out.setdefault(m.algorithm, [])
                if m.list not in lists:
                    lists.append(m.list)
        ids = tuple(dict.fromkeys(m.record for r in records for m in r.matches))
        return Reply(200, out, verdict, hashes, ids, snapshot.generation)


async def hma_index_status(request: Request, state: ServeState) -> Reply:
    """``GET /m/index/status[?signal_type=pdq]``: ``{signal type: {"present", "built_to", "size"}}``."""
    snapshot = state.live.current
    counts = snapshot.info.get("algorithms") or {}
    wanted = request.query_params.get("signal_type")
    names = list(snapshot.config.algorithms)
    if wanted is not None:
        if wanted not in names:
            raise ClientError(400, "bad_request", f"No such signal type '{wanted}'")
        names = [wanted]
    updated = snapshot.info.get("updated_at") or ""
    try:
        built_to = int(datetime.fromisoformat(updated.replace("Z", "+00:00")).timestamp())
    except ValueError:
        built_to = -1
    body = {}
    for name in names:
        size = int((counts.get(name) or {}).get("count", 0) or 0)
        body[name] = {"present": True, "built_to": built_to, "size": size}
    return Reply(200, body, "ok", generation=snapshot.generation)


# -- the application --------------------------------------------------------------------------------


def create_app(config: ServeConfig) -> Starlette:
    """The service as an ASGI application (Starlette), the index opened now (a bad index raises
    :class:`~matcher.errors.IndexStoreError` here, before anything is served). The index watcher runs
    while the application's lifespan does; shutting down closes the index and the audit log."""
    state = ServeState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(state.watch())] if config.reload_interval > 0 else []
        if config.metrics_dir is not None:
            tasks.append(loop.create_task(state.publish_metrics()))
        # what the service holds from now on (modules, the index's structures) is never garbage: the
        # collector need not walk it again on every full pass (profiled at 10M records:
        # 15% of the event loop's time went to the collector before, 10% after)
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.metrics.publish()
            state.close()

    routes = [
        _route("/v1/match", "match", v1_match, state, ["POST"], True),
        _route("/v1/lookup", "lookup", v1_lookup, state, ["POST"], True),
        _route("/v1/hash", "hash", v1_hash, state, ["POST"], True),
        _route("/v1/index", "index", v1_index, state, ["GET"], True),
        _route("/healthz", "healthz", healthz, state, ["GET"], False),
        _route("/metrics", "metrics", metrics, state, ["GET"], True),
        _route("/openapi.json", "openapi", openapi, state, ["GET"], False),
        _route("/m/raw_lookup", "hma_raw_lookup", hma_raw_lookup, state, ["GET"], True),
        _route("/m/lookup", "hma_lookup", hma_lookup_get, state, ["GET"], True),
        _route("/m/lookup", "hma_lookup_upload", hma_lookup_post, state, ["POST"], True),
        _route("/m/index/status", "hma_index_status", hma_index_status, state, ["GET"], True),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 404)
        kind = "method_not_allowed" if code == 405 else "not_found"
        reply = _error(code, kind, f"{request.method} {request.url.path}: {kind.replace('_', ' ')}")
        state.metrics.count("matcher_requests_total", route="unknown", status=str(code))
        _audit(state, request, "unknown", None, request.client.host if request.client else None, reply, 0.0)
        return JSONResponse(reply.body, code)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    app.state.serve = state
    return app


def create_app_from_environment() -> Starlette:
    """:func:`create_app` with the configuration in :data:`CONFIG_ENVIRONMENT` (uvicorn's worker
    processes call this, ``factory=True``)."""
    text = os.environ.get(CONFIG_ENVIRONMENT)
    if not text:
        raise UsageError(f"{CONFIG_ENVIRONMENT} is not set: start the service with 'matcher serve'")
    sys.setswitchinterval(SWITCH_INTERVAL)  # a worker process of matcher serve: see SWITCH_INTERVAL
    return create_app(ServeConfig.from_json(text))
