"""Explanations in a worker process of their own, so they never take the GIL from recommendations.

Why: a full explanation (integrated gradients, Shapley values, counterfactuals) is ~0.1 s of Python-heavy
work. In the API's process it holds the GIL most of that time, and recommendations — a few milliseconds
each, but a hundred small torch calls that each give the GIL back and wait for it again — queue behind
it: at 100 requests/s with 5 % explanations, recommend p95 went to seconds. One process runs Python on
one core at a time; the worker puts the explanations on the other.

How: the API reads the shopper's events and the catalogue rows of their items from its memory
(`serve.memory`) and sends them with the request (user, item, moment, scene, k) and the model folder and
version it serves. The worker (started on first use, `spawn`) loads that model once, builds the case
from the given rows (`GivenReads`: the same fast path of the store's readers `CachedReads` uses, no
database) and returns `explain.explain_built`'s result — the same numbers as in the API's own process.

Anything the worker cannot do well is done in the API's process, as before: shoppers without events
(cold starts, unknown ids), a model read in another timezone than the data's, a model folder that
changed under it; and when the worker died or failed, the request is explained here and the worker is
started again on the next one. So a worker problem costs speed, never an answer.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from recsys_core.serve.memory import window

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 120.0  # the first request waits for the worker to import torch and load the model
# The worker yields the CPU to the API's process: when both want a core, recommendations (milliseconds,
# a shopper waiting) go first and explanations (a tenth of a second, a person reading) take what is left.
# At 120 requests/s of the benchmark's mix, recommend p99 was 92 ms at niceness 0, 63 at 10, 46 at 19.
WORKER_NICENESS = 19


class GivenReads:
    """A cursor-like view on rows sent along: one shopper's events and the catalogue rows of their items."""

    def __init__(self, user_id: str, tz: str, events: dict[str, np.ndarray], items: dict[str, tuple]) -> None:
        self.user_id, self.tz, self.events, self.items = str(user_id), tz, events, items

    def cached_user_events(self, user_id: str, tz: str, before: Any, limit: int | None) -> dict[str, np.ndarray]:
        if str(user_id) != self.user_id or tz != self.tz:
            raise ValueError(f"the explainer was sent the events of {self.user_id!r} in {self.tz}")
        return window(self.events, before, limit)

    def cached_items_by_id(self, item_ids: Any) -> dict[str, tuple]:
        return {i: self.items[i] for i in map(str, item_ids) if i in self.items}

    def cached_user_item_ids(self, user_id: str) -> list[str]:
        return list(dict.fromkeys(self.events["item_id"].tolist()))

    def execute(self, *_: Any) -> Any:
        raise RuntimeError("the explanation worker reads no database: everything it needs is sent with the request")


def _serve(conn: Any) -> None:
    """The worker's loop: one request at a time, until the pipe closes."""
    os.nice(WORKER_NICENESS)
    from recsys_core import recommend
    from recsys_core.explain import build_case, explain_built
    from recsys_core.models.router import routed

    models: dict[tuple[str, str], Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        try:
            key = (msg["model_dir"], msg["version"])
            if key not in models:
                lm = recommend.load_model(msg["model_dir"])
                if lm.version != msg["version"]:
                    conn.send(("stale", f"the folder now holds {lm.version}"))
                    continue
                models.clear()  # the API serves one model at a time
                models[key] = lm
            top = models[key]
            sc = recommend.scenario_of(top, msg["at"], msg["scene"])
            lm = routed(top, sc)
            reads = GivenReads(msg["user"], msg["tz"], msg["events"], msg["items"])
            case = build_case(lm, reads, msg["user"], msg["item"], sc)
            if not len(case.events):  # a cold start's note needs the database: the API explains it
                conn.send(("cold", None))
                continue
            conn.send(("ok", explain_built(lm, case, msg["k"])))
        except ValueError as exc:  # bad values the caller should hear about (an item the model does not know, ...)
            conn.send(("value_error", str(exc)))
        except Exception:  # noqa: BLE001 — reported to the API, which explains the request itself
            conn.send(("error", traceback.format_exc()))


class ExplainWorker:
    """The API's handle on the worker process (thread-safe: one request at a time; the explain lane has one thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Any = None
        self.served = self.fallbacks = self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process with threads and open DuckDB files
        ours, theirs = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(theirs,), name="scenepush-explainer", daemon=True)
        self._process.start()
        theirs.close()
        self._conn = ours

    def explain(self, request: dict[str, Any]) -> tuple[str, Any]:
        """("ok", explanation) | ("value_error", message) | ("cold" | "stale" | "failed", detail): the caller
        explains "cold", "stale" and "failed" in its own process."""
        with self._lock:
            for attempt in (1, 2):
                if self._process is not None and not self._process.is_alive():  # died since the last request
                    self._stop_process()
                    self.restarts += 1
                if self._process is None:
                    self._start()
                try:
                    self._conn.send(request)
                    if not self._conn.poll(REPLY_TIMEOUT_S):
                        raise TimeoutError(f"no answer within {REPLY_TIMEOUT_S:.0f} s")
                    status, value = self._conn.recv()
                except (EOFError, OSError, TimeoutError) as exc:
                    log.warning("the explanation worker failed (%s); attempt %d", exc, attempt)
                    self._stop_process()
                    self.restarts += 1
                    continue
                if status == "ok":
                    self.served += 1
                elif status == "error":
                    log.warning("the explanation worker could not explain a request:\n%s", value)
                    status = "failed"
                return status, value
            self.fallbacks += 1
            return "failed", "the worker did not answer"

    def _stop_process(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        self._process = self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
            if self._process is not None:
                self._process.join(5)
            self._stop_process()


def request_for(memory: Any, model_dir: Path, version: str, tz: str, user: str, item: str, at: str,
                scene: dict[str, str], k: int, events: dict[str, np.ndarray]) -> dict[str, Any]:
    """What the worker needs: the shopper's events and the catalogue rows of their items and of ``item``."""
    items = memory.items_by_id(list(dict.fromkeys([*events["item_id"].tolist(), item])))
    return {"model_dir": str(model_dir), "version": version, "tz": tz, "user": user, "item": item, "at": at,
            "scene": dict(scene), "k": int(k), "events": events, "items": items}
