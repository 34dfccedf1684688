"""The HTTP API (FastAPI): recommend, explain, push and events beside the studio, on the same database.

Every route answers through the functions the CLI and the studio use (`recommend.recommend`,
`explain`, `scenario.plan_push` / `store_push`, `push.reasons_at_push_time`, the importer's checks);
this module only parses, authorises, times and serialises. Design and limits: docs/serving.md.

- Auth: every route but ``GET /health`` needs the ``X-API-Key`` header (compared in constant time).
- Bodies: JSON, unknown fields rejected (422), at most `MAX_BODY_BYTES` (413) and `MAX_BATCH` items.
- Errors: ``{"detail": ...}`` with a clear message, never a traceback (those go to the server log).
- Reads share one read-only DuckDB connection that steps aside for write turns (`store.turns`);
  events land in fsync'd segments and are merged every couple of seconds (`serve.landing`).
- Recommend and explain read shoppers' events, the catalogue and the scene fields from memory
  (`serve.memory`), kept true to the file after every merge and every write of another process, so a
  write turn does not stall them.
- The model is held by `ModelHolder`: a request takes the current model once and finishes on it,
  so a reload (``POST /models/reload`` or a changed model folder) never fails a request.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys_core import recommend, registry
from recsys_core.registry import LoadedModel, ModelFolderError
from recsys_core.serve.explainer import ExplainWorker, request_for
from recsys_core.serve.landing import Landing
from recsys_core.serve.memory import HistoryCache, cached_reads
from recsys_core.serve.metrics import Metrics
from recsys_core.store import DatabaseLockedError, connect
from recsys_core.store.analytics import data_timezone
from recsys_core.store.turns import SharedReader

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
MAX_BODY_BYTES = 4 << 20   # 1,000 events of ~300 bytes is ~0.3 MB; far larger bodies are refused (413)
MAX_BATCH = 1000           # requests per /recommend/batch, events per /events
OPEN_ROUTES = frozenset({"/health"})
HOUSEKEEPING_S = 0.05      # how often an idle connection is let go for another process's write turn
DEFAULT_THREADS = 2         # route handlers at once (`serve --threads`); measured in docs/serving.md
# Lanes of their own, so a slow kind of request never holds the threads recommendations wait for:
LANE_THREADS = {"explain": 1,  # ~0.1–0.3 s of a core each: one at a time beside the recommendations
                "events": 8}   # batches waiting together are landed together (`Landing.receive`: group commit)


# --- request bodies ----------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Moment = Annotated[str, StringConstraints(min_length=1, max_length=64)]
SceneMap = Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=64)],
                          Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=32)]


class RecommendRequest(_Body):
    user: Name = Field(examples=["u00042"])
    at: Moment = Field(description="ISO 8601 moment; without an offset it is local time of the data's timezone",
                       examples=["2025-11-11T08:00:00+08:00"])
    scene: SceneMap = Field(default_factory=dict, description="scene field -> value", examples=[{"device": "mobile"}])
    k: int = Field(10, ge=1, le=100)
    exclude_seen: bool = Field(False, description="drop items the shopper has interacted with")


class RecommendBatchRequest(_Body):
    requests: list[RecommendRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ExplainRequest(_Body):
    user: Name
    item: Name
    at: Moment
    scene: SceneMap = Field(default_factory=dict)
    k: int = Field(10, ge=1, le=100, description="the top-k boundary the counterfactuals refer to")


class PushRequest(_Body):
    users: list[Name] = Field(min_length=1, max_length=100)
    at: Moment
    scene: SceneMap = Field(default_factory=dict)
    k: int = Field(5, ge=1, le=50)


class Event(_Body):
    event_id: Name = Field(description="the client's id of the event: a retried event with the same id is stored once")
    user: Annotated[str, StringConstraints(max_length=128)]
    item: Annotated[str, StringConstraints(max_length=128)]
    ts: Annotated[str, StringConstraints(max_length=64)] | int | float = Field(
        description="ISO 8601 (without an offset: the data's timezone) or Unix seconds")
    behavior: Annotated[str, StringConstraints(max_length=32)] = Field("pv", description="pv, fav, cart, buy (or click, purchase, ...)")
    scene: SceneMap = Field(default_factory=dict)


class EventsRequest(_Body):
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


class ReloadRequest(_Body):
    model_dir: str | None = Field(None, description="a folder listed by GET /models; default: the folder served now")


# --- the model -----------------------------------------------------------------------------------------


def _stamp(model_dir: Path) -> tuple:
    """Changes whenever the folder's files are replaced (the registry renames a new folder into place)."""
    out = []
    for name in (registry.METADATA_FILE, registry.WEIGHTS_FILE):
        try:
            st = (model_dir / name).stat()
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class ModelHolder:
    """The served model. Requests read `current` once; `reload` loads the new model completely before
    swapping the reference, so in-flight requests finish on the old one and none fails."""

    def __init__(self, model_dir: str | os.PathLike | None) -> None:
        self.dir = Path(model_dir) if model_dir else recommend.bundled_model_dir()
        self._lock = threading.Lock()
        self._stamp = _stamp(self.dir)
        self.current: LoadedModel = recommend.load_model(self.dir)
        self.loaded_at = time.time()
        self.reloads = 0
        self.reload_failures = 0

    def reload(self, model_dir: str | os.PathLike | None = None) -> dict[str, Any]:
        with self._lock:
            target = Path(model_dir) if model_dir else self.dir
            stamp = _stamp(target)
            new = recommend.load_model(target)  # raises ModelFolderError; the old model keeps serving
            previous, self.current, self.dir, self._stamp = self.current, new, target, stamp
            self.loaded_at = time.time()
            self.reloads += 1
        log.info("serving %s (%s), was %s", new.version, target, previous.version)
        return {"previous_version": previous.version, "model_version": new.version, "path": str(target),
                "swapped": previous.version != new.version}

    def reload_if_changed(self) -> None:
        """Reload when the served folder's files changed; a half-written or broken folder is logged and retried."""
        if _stamp(self.dir) == self._stamp:
            return
        try:
            self.reload()
        except (ModelFolderError, OSError) as exc:
            self.reload_failures += 1
            self._stamp = _stamp(self.dir)  # retried at the next change, not in a tight loop
            log.warning("the model folder %s changed but could not be loaded; still serving %s: %s", self.dir, self.current.version, exc)


# --- the service ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeConfig:
    db: Path
    api_key: str
    model_dir: Path | None = None
    merge_interval_s: float = 2.0  # a merge pauses every reader for its write turn (~0.1–0.2 s): batch them
    model_check_s: float = 1.0
    threads: int = DEFAULT_THREADS  # route handlers running at once; the rest wait their turn in the event loop
    memory: bool = True  # recommend and explain read shoppers' events from memory (`serve.memory`), not the file
    explain_process: bool = True  # explanations run in a worker process (`serve.explainer`; needs `memory`)


class Service:
    """What the routes share: the reader, the model, the landing folder, the metrics, the background thread."""

    def __init__(self, config: ServeConfig) -> None:
        if not config.api_key:
            raise ValueError("no API key: set SCENEPUSH_API_KEY or pass --api-key-file")
        connect(config.db, read_only=True).close()  # a clear error now for a missing, locked or outdated file
        self.config = config
        self.reader = SharedReader(config.db)
        self.models = ModelHolder(config.model_dir)
        self.memory = HistoryCache(self.reader.cursor) if config.memory else None
        self.landing = Landing(config.db, self.reader.cursor, self.reader.write,
                               self.memory.schema if self.memory is not None else None)
        self._db_stamp = _file_stamp(config.db)
        self.explainer = ExplainWorker() if config.memory and config.explain_process else None
        self.metrics = Metrics()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reads(self) -> Any:
        """What recommend and explain read through: the memory (falling back to the file), or the file."""
        return cached_reads(self.memory, self.reader.cursor) if self.memory is not None else self.reader.cursor()

    def merge(self) -> dict[str, Any]:
        """Merge landed events; the merged run's events join the histories in memory (`HistoryCache.own_write`)."""
        if self.memory is None:
            return self.landing.merge()
        with self.memory.own_write() as stored:
            merged = self.landing.merge()
            stored(merged["run_id"])
        return merged

    def watch_file(self) -> None:
        """When the file changed (a write of ours or of another process), let the memory check what changed."""
        stamp = _file_stamp(self.config.db)  # read before the check: a change after it is seen next round
        if stamp != self._db_stamp:
            self._db_stamp = stamp
            if self.memory is not None:
                self.memory.check()

    def start(self) -> None:
        self.merge()  # what landed before a crash or stop is stored before serving
        if self.memory is not None:
            self.memory.warm()
        self._thread = threading.Thread(target=self._housekeeping, name="serve-housekeeping", daemon=True)
        self._thread.start()

    def _housekeeping(self) -> None:
        """Let go of an idle connection when another process wants a write turn, merge landed events,
        and watch the model folder."""
        next_merge = time.monotonic() + self.config.merge_interval_s
        next_model = time.monotonic() + self.config.model_check_s
        while not self._stop.wait(HOUSEKEEPING_S):
            now = time.monotonic()
            try:
                self.reader.release_if_idle()
                if now >= next_merge:
                    next_merge = now + self.config.merge_interval_s
                    self.merge()
                self.watch_file()
                if now >= next_model:
                    next_model = now + self.config.model_check_s
                    self.models.reload_if_changed()
            except Exception:  # noqa: BLE001 — landed events stay on disk; the next round retries
                log.exception("housekeeping failed; retrying")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.explainer is not None:
            self.explainer.close()
        self.landing.close()
        self.reader.close()

    def gauges(self) -> list[tuple[str, str, float]]:
        c = self.landing.counters
        return [
            ("scenepush_events_stored_total", "Events acknowledged as stored (landed on disk; merged into the database within seconds).", c["stored"]),
            ("scenepush_events_duplicates_total", "Events skipped because their event_id was already received.", c["duplicates"]),
            ("scenepush_events_quarantined_total", "Events rejected by validation and quarantined with reasons.", c["quarantined"]),
            ("scenepush_event_checks_total", "Checks of posted events: batches that arrive together are checked and fsync'd together.", c["checks"]),
            ("scenepush_events_pending", "Landed events not yet merged into the database.", self.landing.pending_events()),
            ("scenepush_merges_total", "Merges of landed events into the database.", c["merges"]),
            ("scenepush_last_merge_seconds", "How long the last merge held its write turn (every reader waits meanwhile).",
             self.landing.last_merge_s or 0.0),
            ("scenepush_merge_failures_total", "Merges that failed (retried; the events stay landed).", c["merge_failures"]),
            ("scenepush_model_reloads_total", "Model swaps since start.", self.models.reloads),
            *self._memory_gauges(),
            *([("scenepush_explanations_in_worker_total", "Explanations computed in the worker process.", self.explainer.served),
               ("scenepush_explain_worker_restarts_total", "Times the explanation worker was started again after dying.", self.explainer.restarts)]
              if self.explainer is not None else []),
            ("scenepush_model_reload_failures_total", "Changed model folders that could not be loaded.", self.models.reload_failures),
        ]


    def _memory_gauges(self) -> list[tuple[str, str, float]]:
        if self.memory is None:
            return []
        m = self.memory.stats()
        return [("scenepush_memory_shoppers", "Shoppers whose events the API holds in memory.", m["users"]),
                ("scenepush_memory_hits_total", "Reads of a shopper's events answered from memory.", m["hits"]),
                ("scenepush_memory_misses_total", "Reads of a shopper's events that went to the file (then kept).", m["misses"]),
                ("scenepush_memory_clears_total", "Times the memory was emptied because another process imported or erased.", m["clears"])]


def _file_stamp(db: Path) -> tuple:
    """Changes whenever the database file (or its write-ahead log) is written."""
    out = []
    for path in (Path(db), Path(f"{db}.wal")):
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


# --- JSON out ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-safe data: numpy scalars and arrays as Python values, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:  # most answers are plain already: walking them first would cost a recommendation ~10 % of its time
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError):  # numpy values, NaN or infinities somewhere
            text = json.dumps(_plain(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


# --- the gate: auth, body size, metrics ----------------------------------------------------------------


class Gate:
    """Pure ASGI middleware: times every request for /metrics, refuses a missing or wrong key (401) and
    bodies over the limit (413) before any route runs."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service
        self.key = service.config.api_key.encode()
        self.paths: set[str] | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_timed(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_timed)
        finally:
            if self.paths is None:
                self.paths = {getattr(r, "path", None) for r in scope["app"].routes}
            route = getattr(scope.get("route"), "path", None)  # set by the router; absent when refused before it
            name = route or (scope["path"] if scope["path"] in self.paths else "unmatched")
            self.service.metrics.observe(scope["method"], name, status["code"], time.perf_counter() - started)

    async def _handle(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        if scope["path"] not in OPEN_ROUTES:
            given = headers.get(API_KEY_HEADER.lower().encode(), b"")
            if not given or not hmac.compare_digest(given, self.key):
                await _error(401, f"missing or wrong API key: send it in the {API_KEY_HEADER} header")(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _error(413, f"request body over {MAX_BODY_BYTES} bytes")(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:  # a chunked body without a length: the route answers 413
                raise StarletteHTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
            return message

        await self.app(scope, receive_limited, send)


# --- the app ---------------------------------------------------------------------------------------------


def create_app(config: ServeConfig) -> FastAPI:
    """The API for one database and model folder (`recsys_core.serve.run` serves it with uvicorn)."""
    service = Service(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Sync routes run in anyio's thread pool (40 threads by default). On 2 cores, 40 handlers at once only
        # contend for the GIL and the cores: fewer, each finishing sooner, serve more (docs/serving.md).
        anyio.to_thread.current_default_thread_limiter().total_tokens = service.config.threads
        lanes.update({name: anyio.CapacityLimiter(n) for name, n in LANE_THREADS.items()})
        service.start()
        try:
            yield
        finally:
            service.stop()

    key_doc = Security(APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="the key of $SCENEPUSH_API_KEY"))
    app = FastAPI(
        title="ScenePush API",
        version="1",
        description="Time- and scene-aware recommendations, explanations, pushes and live behaviour events. "
                    f"Every route but /health needs the {API_KEY_HEADER} header.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.state.service = service
    lanes: dict[str, anyio.CapacityLimiter] = {}
    app.state.lanes = lanes

    async def in_lane(name: str, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=lanes[name])
    app.add_middleware(Gate, service=service)
    _error_handlers(app)
    reader, models, landing = service.reader, service.models, service.landing

    def scenario(lm: LoadedModel, at: str, scene: dict[str, str]):
        return recommend.scenario_of(lm, at, scene)

    def one_recommendation(lm: LoadedModel, req: RecommendRequest) -> dict[str, Any]:
        sc = scenario(lm, req.at, req.scene)
        with service.reads() as cur:
            top = recommend.rank_items(lm, cur, req.user, sc, k=req.k, exclude_seen=req.exclude_seen)
            note = recommend.cold_start_reason(lm, cur, sc)["en"] if top.attrs["cold_start"] else None
        return recommend.recommendation_dict(lm, sc, top, note)

    @app.post("/recommend", dependencies=[key_doc], summary="Top-k items for a shopper at a moment and scene")
    def recommend_route(req: RecommendRequest) -> Any:
        return SafeJSONResponse(one_recommendation(models.current, req))  # a response: FastAPI's encoder walk is skipped

    @app.post("/recommend/batch", dependencies=[key_doc], summary=f"Up to {MAX_BATCH} recommendations in one call")
    def recommend_batch(req: RecommendBatchRequest) -> Any:
        lm = models.current  # one model for the whole batch
        results = []
        for r in req.requests:
            try:
                results.append(one_recommendation(lm, r))
            except recommend.UnknownUserError as exc:
                results.append({"error": {"status": 404, "detail": str(exc)}})
            except ValueError as exc:
                results.append({"error": {"status": 422, "detail": str(exc)}})
        return {"results": results, "model_version": lm.version}

    @app.post("/explain", dependencies=[key_doc], summary="Why this item for this shopper, moment and scene (the Why page's explanation)")
    async def explain_route(req: ExplainRequest) -> Any:
        return await in_lane("explain", explain_one, req)

    def explain_one(req: ExplainRequest) -> Any:
        from recsys_core.explain import build_case, explain_built, with_cold_start_note
        from recsys_core.explain.attributions import check_explainable

        from recsys_core.models.router import routed, routing_note

        top = models.current
        sc = scenario(top, req.at, req.scene)
        lm = routed(top, sc)  # a router is explained through the member it routes this moment to
        check_explainable(lm.model)
        if service.explainer is not None and lm.features.calendar.timezone == service.memory.tz:
            with service.reads() as cur:
                events = cur.all_user_events(req.user)
            if len(events["ts"]):  # shoppers without events (cold starts, unknown ids) are explained here
                status, value = service.explainer.explain(request_for(
                    service.memory, top.path, top.version, service.memory.tz, req.user, req.item, req.at, req.scene, req.k, events))
                if status == "ok":
                    return SafeJSONResponse({**value, **routing_note(top, sc)})  # rendered here, not in the event loop
                if status == "value_error":
                    raise ValueError(value)
        with service.reads() as cur:  # the history is read here; the explanation itself needs no database
            case = build_case(lm, cur, req.user, req.item, sc)
        out = {**explain_built(lm, case, req.k), **routing_note(top, sc)}
        with service.reads() as cur:  # a shopper without history: the list is the moment's popularity; say so
            return SafeJSONResponse(with_cold_start_note(out, lm, cur, case))

    @app.post("/push", dependencies=[key_doc], summary="Record pushes with their reasons in the audit log (as the CLI does)")
    def push_route(req: PushRequest) -> Any:
        from recsys_core import push as push_mod
        from recsys_core import scenario as scenario_mod

        lm = models.current
        sc = scenario(lm, req.at, req.scene)
        planned, skipped = [], []
        for user in dict.fromkeys(req.users):
            with reader.cursor() as cur:
                try:
                    top = recommend.recommend(lm, cur, user, sc, k=req.k)
                except recommend.UnknownUserError:
                    skipped.append(user)
                    continue
                plan = scenario_mod.plan_push(cur, lm, user, sc, top)
                reasons = None
                if not plan.new.empty:
                    reasons = push_mod.reasons_at_push_time(cur, lm, user, sc, plan.new[["item_id", "rank", "score"]], k=req.k)
            planned.append((user, plan, reasons))
        pushes, already = [], 0
        if any(not p.new.empty for _, p, _ in planned):
            with reader.write() as con:  # one short write turn for every shopper's pushes
                for user, plan, reasons in planned:
                    ids = scenario_mod.store_push(con, lm, user, sc, plan, reasons)
                    for push_id, row in zip(ids, plan.new.itertuples()):
                        pushes.append({"push_id": push_id, "user_id": user, "item_id": str(row.item_id), "rank": int(row.rank),
                                       "score": round(float(row.score), 5)})
        already = sum(len(p.already) for _, p, _ in planned)
        return {"pushed": len(pushes), "already_pushed": already, "skipped": skipped, "at": sc.at.isoformat(),
                "scene": sc.scene, "model_version": lm.version, "pushes": pushes}

    @app.post("/events", dependencies=[key_doc], summary="New behaviour events (validated like an import, idempotent per event_id)")
    async def events_route(req: EventsRequest) -> Any:
        return await in_lane("events", events_one, req)

    def events_one(req: EventsRequest) -> Any:
        result = landing.receive([e.model_dump() for e in req.events])
        return {"received": len(req.events), "stored": result.stored, "duplicates": result.duplicates,
                "quarantined": result.quarantined, "rejected": result.rejected, "batch_id": result.batch_id,
                "visible_within_s": config.merge_interval_s + 1}

    @app.get("/models", dependencies=[key_doc], summary="The served model and the model folders available")
    def models_route() -> Any:
        lm = models.current
        available = []
        for d in _available_dirs(models.dir):
            try:
                meta = registry.read_metadata(d)
                available.append({"path": str(d), "model_type": meta.get("model_type"), "version": meta.get("version"),
                                  "serving": d.resolve() == models.dir.resolve()})
            except ModelFolderError as exc:
                available.append({"path": str(d), "error": str(exc)})
        return {"serving": {"path": str(models.dir), "model_type": lm.model_type, "version": lm.version, "protocol": lm.protocol,
                            "context_fields": list(lm.context_fields), "loaded_at": models.loaded_at, "reloads": models.reloads},
                "available": available}

    @app.post("/models/reload", dependencies=[key_doc], summary="Serve a new model version (in-flight requests finish on the old one)")
    def reload_route(req: ReloadRequest | None = None) -> Any:
        target = None
        if req is not None and req.model_dir:
            target = Path(req.model_dir)
            allowed = {d.resolve() for d in _available_dirs(models.dir)}
            if target.resolve() not in allowed:
                return _error(422, f"model_dir {req.model_dir!r} is not one of the folders GET /models lists")
        return models.reload(target)

    @app.get("/health", summary="Model loaded and database reachable (no key needed)")
    def health() -> Any:
        db_ok, problem = True, None
        try:
            with reader.cursor() as cur:
                data_timezone(cur)
        except Exception as exc:  # noqa: BLE001 — reported, not raised
            db_ok, problem = False, str(exc).splitlines()[0]
        body = {"status": "ok" if db_ok else "degraded", "model_loaded": True, "model_version": models.current.version,
                "database": db_ok, "pending_events": landing.pending_events()}
        if problem:
            body["database_problem"] = problem
        return SafeJSONResponse(body, status_code=200 if db_ok else 503)

    @app.get("/metrics", dependencies=[key_doc], summary="Request counts and latency histograms (Prometheus text format)",
             response_class=PlainTextResponse)
    def metrics_route() -> Response:
        return PlainTextResponse(service.metrics.render(service.gauges()), media_type="text/plain; version=0.0.4")

    return app


def _available_dirs(current: Path) -> list[Path]:
    """The served folder, the bundled model and the folders under ./models (or `$SCENEPUSH_MODELS_DIR`, as the studio)."""
    found = recommend.list_model_dirs(os.environ.get("SCENEPUSH_MODELS_DIR") or recommend.MODELS_ROOT)
    return found if any(d.resolve() == current.resolve() for d in found) else [current, *found]


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return _error(422, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(recommend.UnknownUserError)
    async def unknown_user(request: Request, exc: Exception) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(ValueError)  # bad values the schema cannot see (a moment, a scene field, an item)
    async def bad_value(request: Request, exc: Exception) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(DatabaseLockedError)
    async def locked(request: Request, exc: Exception) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("internal error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error (logged as {ref})")
