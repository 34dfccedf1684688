"""Load on the HTTP API: concurrent clients mixing recommend, events and explain, on loopback only.

    .venv/bin/python benchmarks/bench_serve.py --rate 100            # open loop: 100 requests/s due, ≤ 50 in flight
    .venv/bin/python benchmarks/bench_serve.py                       # closed loop: 50 clients × 60 s, no think time
    .venv/bin/python benchmarks/bench_serve.py --rate 100 --soak 600 # 10 minutes; RSS growth of the server
    .venv/bin/python benchmarks/bench_serve.py --mix recommend=85,events=15   # what the rest costs without explain

Starts `python -m recsys_core serve` on 127.0.0.1 (a free port) against a COPY of the database (default
data/scenepush.duckdb; the original is never written), waits until it is healthy, then sends requests for
--duration seconds: recommend 80 % (a random active shopper, a random hour of the data's last week, a
random scene), events 15 % (a batch of 20 with fresh event ids; one event in 20 has a bad time on purpose,
so the quarantine path is loaded too), explain 5 % (a random shopper and one of the 200 first items).

Two ways to load it:
- ``--rate R`` (open loop, how "p99 at R requests/s" is meant): requests fall due at R per second (Poisson
  arrivals) whatever the answers; at most --clients are in flight, one keep-alive connection each. A
  request's latency counts from the moment it was due, so waiting for a free connection counts too (no
  coordinated omission). When the server cannot keep up, the latencies say so.
- without --rate (closed loop): --clients clients each send their next request when the last one answered,
  so the throughput is what the server sustains and the latency is mostly waiting in line (Little's law).

The clients are raw HTTP/1.1 on asyncio streams by default (`--client raw`): they share the 2 cores with
the server, and httpx (`--client httpx`) spends a core of its own at ~100 requests/s.

After the run it waits until every landed event is merged, stops the server (SIGTERM: final merge),
and counts in the database: events in (acknowledged by the API) must equal events stored + quarantined
there — `lost` is the difference. RSS of the server and its explanation worker is sampled every 5 s (/proc); in --soak mode
growth is measured from the sample after the first minute (warm-up: model, caches, allocator) to the last.

Prints one JSON object on stdout (the README table is filled from it): throughput, p50/p95/p99 per route
in ms, errors, events in/stored/quarantined/lost, RSS, and the load average before and after. Targets
(recommend p99 ≤ 50 ms at ≥ 200 requests/s on 2 cores, 0 errors, 0 lost events, soak RSS growth ≤ 10 %)
are reported, not asserted. Bounded: every request has a 30 s timeout, the run ends at --duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY = "bench-" + uuid.uuid4().hex
MIX = "recommend=80,events=15,explain=5"
ROUTES = ("recommend", "events", "explain")
EVENT_BATCH = 20
TIMEOUT_S = 30.0
RSS_EVERY_S = 5.0
SOAK_WARMUP_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            for child in children.read_text().split():
                found += [int(child), *_descendants(int(child))]
        except OSError:
            pass
    return found


def rss_mb(pid: int) -> float | None:
    """RSS of the server and its child processes (the explanation worker)."""
    total = None
    for p in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = (total or 0.0) + int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def world(db: Path) -> dict:
    """Shoppers, items, scene values and the last week of the data, to draw requests from."""
    from recsys_core.store import connect
    from recsys_core.store.events import active_users

    con = connect(db, read_only=True)
    try:
        users = active_users(con, 500)
        items = [r[0] for r in con.execute("SELECT item_id FROM items ORDER BY item_id").fetchall()]
        fields = [r[0] for r in con.execute("SELECT name FROM scene_fields ORDER BY position").fetchall()]
        scene = {f: [r[0] for r in con.execute(f'SELECT DISTINCT "{f}" FROM events WHERE "{f}" <> \'unknown\' LIMIT 20').fetchall()]
                 for f in fields}
        last = con.execute("SELECT max(ts) FROM events").fetchone()[0]
    finally:
        con.close()
    return {"users": users, "items": items, "scene": scene, "last": last}


class Run:
    def __init__(self, url: str, w: dict, rng: random.Random, mix: dict[str, float]) -> None:
        self.url, self.w, self.rng, self.mix = url, w, rng, mix
        self.lat: dict[str, list[float]] = {name: [] for name in ROUTES}
        self.errors: dict[str, int] = {name: 0 for name in ROUTES}
        self.error_samples: list[str] = []
        self.events_sent = self.events_acked = 0
        self.acked = {"stored": 0, "quarantined": 0, "duplicates": 0}

    def moment(self) -> str:
        from datetime import timedelta

        at = self.w["last"] - timedelta(days=self.rng.randint(0, 6), hours=self.rng.randint(0, 23))
        return at.strftime("%Y-%m-%dT%H:00:00")  # the data's local timezone (no offset)

    def scene(self) -> dict:
        return {f: self.rng.choice(v) for f, v in self.w["scene"].items() if v and self.rng.random() < 0.7}

    def body(self, route: str) -> dict:
        user = self.rng.choice(self.w["users"])
        if route == "recommend":
            return {"user": user, "at": self.moment(), "scene": self.scene(), "k": 10}
        if route == "explain":
            return {"user": user, "item": self.rng.choice(self.w["items"][:200]), "at": self.moment(), "scene": self.scene(), "k": 10}
        events = []
        for i in range(EVENT_BATCH):
            ts = self.moment() if i else "not-a-time"  # one bad event per batch: quarantined with its reason
            events.append({"event_id": f"bench-{uuid.uuid4().hex}", "user": self.rng.choice(self.w["users"]),
                           "item": self.rng.choice(self.w["items"]), "ts": ts, "behavior": self.rng.choice(["pv", "pv", "pv", "cart", "fav", "buy"]),
                           "scene": self.scene()})
        return {"events": events}

    def pick(self) -> str:
        names, weights = zip(*self.mix.items())
        return self.rng.choices(names, weights)[0]

    async def one(self, http: "Client", route: str, body: dict, t0: float) -> None:
        """Send one request; its latency counts from ``t0`` (perf_counter): in --rate mode the moment it was
        due, so time spent waiting for a free connection counts too (no coordinated omission)."""
        try:
            status, text = await http.post(f"/{route}", json.dumps(body).encode())
            ok = status == 200
            if not ok and len(self.error_samples) < 5:
                self.error_samples.append(f"{route} {status}: {text[:200]!r}")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError, httpx.HTTPError) as exc:
            ok = False
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{route}: {type(exc).__name__} {exc}")
        elapsed = (time.perf_counter() - t0) * 1000
        if route == "events":
            self.events_sent += EVENT_BATCH
        if not ok:
            self.errors[route] += 1
            return
        self.lat[route].append(elapsed)
        if route == "events":
            out = json.loads(text)
            self.events_acked += EVENT_BATCH
            for k in self.acked:
                self.acked[k] += out[k]

    async def client(self, http: "Client", until: float) -> None:
        while time.monotonic() < until:
            route = self.pick()
            body = self.body(route)
            await self.one(http, route, body, time.perf_counter())


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams. The generator shares the 2 cores with the
    server: httpx spends ~5–9 ms of a core per request (a whole core at ~100 req/s), this a fraction of one."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._post(path, payload), TIMEOUT_S)
        except BaseException:
            self.close()  # a half-read answer must not be mistaken for the next one
            raise

    async def _post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None
        if not reused:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nX-API-Key: {KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        self.writer.write(head.encode() + payload)
        first = await self.reader.readline()
        if not first and reused:  # the server closed an idle keep-alive connection (uvicorn: after 5 s): send it again on a new one
            self.close()
            return await self._post(path, payload)
        status = int(first.split()[1])
        length, chunked, close = None, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            length = int(value) if name == "content-length" else length
            chunked = chunked or (name == "transfer-encoding" and "chunked" in value)
            close = close or (name == "connection" and value == "close")
        if chunked:
            body = b""
            while (size := int((await self.reader.readline()).strip() or b"0", 16)):
                body += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            body = await self.reader.readexactly(length or 0)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class HttpxConnection:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        r = await self.http.post(self.url + path, content=payload,
                                 headers={"X-API-Key": KEY, "Content-Type": "application/json"})
        return r.status_code, r.content


Client = RawConnection | HttpxConnection


async def drive(run: Run, clients: int, duration: float, rate: float | None = None, kind: str = "raw") -> float:
    """Closed loop (``rate`` None): each client sends its next request when the last one answered. Open loop:
    requests are due at ``rate`` per second (Poisson arrivals) whatever the answers, at most ``clients`` in
    flight (one connection each); a request waiting for a free connection is late and its latency says so."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits) as http:
        host, port = run.url.removeprefix("http://").split(":")
        conns: list[Client] = [RawConnection(host, int(port)) if kind == "raw" else HttpxConnection(http, run.url)
                               for _ in range(clients)]
        t0 = time.monotonic()
        try:
            if rate is None:
                await asyncio.gather(*(run.client(c, t0 + duration) for c in conns))
                return time.monotonic() - t0
            free: asyncio.Queue[Client] = asyncio.LifoQueue()  # the most recently used connection first, as pools do
            for c in conns:
                free.put_nowait(c)

            async def due_request(route: str, body: dict, due: float) -> None:
                conn = await free.get()
                try:
                    await run.one(conn, route, body, due)
                finally:
                    free.put_nowait(conn)

            in_flight: set[asyncio.Task] = set()
            due = time.perf_counter()
            end = due + duration
            while True:
                due += run.rng.expovariate(rate)
                if due >= end:
                    break
                route = run.pick()
                body = run.body(route)
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(due_request(route, body, due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
            return time.monotonic() - t0
        finally:
            for c in conns:
                if isinstance(c, RawConnection):
                    c.close()


def parse_mix(text: str) -> dict[str, float]:
    """"recommend=80,events=15,explain=5" -> shares summing to 1 (a route left out is not sent)."""
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in ROUTES or not weight.strip():
            raise SystemExit(f"--mix: {part!r} is not ROUTE=WEIGHT with ROUTE one of {', '.join(ROUTES)}")
        mix[name.strip()] = float(weight)
    total = sum(mix.values())
    if total <= 0:
        raise SystemExit("--mix: the weights sum to 0")
    return {k: v / total for k, v in mix.items()}


def pct(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": len(values), "p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(ROOT / "data" / "scenepush.duckdb"), help="database to copy (never written)")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--threads", type=int, default=None, help="serve --threads (default: serve's own)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--soak", type=float, default=None, metavar="SECONDS", help="a long run (e.g. 600) reporting RSS growth")
    parser.add_argument("--rate", type=float, default=None, metavar="REQ_PER_S",
                        help="open loop: requests due at this rate (Poisson), at most --clients in flight; default: closed loop")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: keep-alive HTTP/1.1 on asyncio streams (light); httpx: httpx.AsyncClient (a core of its own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mix", default=MIX, help=f"route=weight,... (default {MIX}, the issue's mix)")
    args = parser.parse_args()
    mix = parse_mix(args.mix)
    duration = args.soak or args.duration

    work = Path(tempfile.mkdtemp(prefix="scenepush-bench-serve-"))
    db = work / "bench.duckdb"
    shutil.copyfile(args.db, db)
    w = world(db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "recsys_core", "serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port)]
    if args.model_dir:
        cmd += ["--model-dir", args.model_dir]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log = open(work / "serve.log", "w")
    server = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "SCENEPUSH_API_KEY": KEY}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise SystemExit(f"serve exited early: {(work / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("serve not healthy after 180 s")
            time.sleep(0.3)
        load_before = os.getloadavg()
        run = Run(url, w, random.Random(args.seed), mix)
        samples: list[tuple[float, float]] = []

        async def sample_rss(stop: asyncio.Event) -> None:
            t0 = time.monotonic()
            while not stop.is_set():
                value = rss_mb(server.pid)
                if value is not None:
                    samples.append((time.monotonic() - t0, value))
                try:
                    await asyncio.wait_for(stop.wait(), RSS_EVERY_S)
                except asyncio.TimeoutError:
                    pass

        async def everything() -> float:
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_rss(stop))
            elapsed = await drive(run, args.clients, duration, args.rate, args.client)
            stop.set()
            await sampler
            return elapsed

        elapsed = asyncio.run(everything())
        load_after = os.getloadavg()
        merge_deadline = time.monotonic() + 120
        while httpx.get(f"{url}/health", timeout=30).json()["pending_events"]:
            if time.monotonic() > merge_deadline:
                break
            time.sleep(0.2)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()

    from recsys_core.store import connect

    con = connect(db, read_only=True)
    try:
        stored = con.execute("SELECT count(*) FROM events WHERE starts_with(event_id, 'bench-')").fetchone()[0]
        twice = con.execute("SELECT count(*) - count(DISTINCT event_id) FROM events WHERE starts_with(event_id, 'bench-')").fetchone()[0]
        quarantined = con.execute(
            "SELECT count(*) FROM quarantine WHERE starts_with(run_id, 'api-') AND starts_with(json_extract_string(raw, '$.event_id'), 'bench-')"
        ).fetchone()[0]
    finally:
        con.close()
    total = sum(len(v) for v in run.lat.values()) + sum(run.errors.values())
    rss = [v for _, v in samples]
    warm = [v for t, v in samples if t >= SOAK_WARMUP_S] if args.soak else rss
    summary = {
        "clients": args.clients,
        "offered_rps": args.rate,
        "client": args.client,
        "threads": args.threads,
        "duration_s": round(elapsed, 1),
        "mode": "soak" if args.soak else "load",
        "requests": total,
        "throughput_rps": round(total / elapsed, 1),
        "recommend_rps": round(len(run.lat["recommend"]) / elapsed, 1),
        "mix": mix,
        "routes": {name: {**pct(run.lat[name]), "errors": run.errors[name]} for name in ROUTES},
        "errors": sum(run.errors.values()),
        "error_samples": run.error_samples,
        "events_sent": run.events_sent,
        "events_in": run.events_acked,
        "acknowledged": run.acked,
        "events_stored": stored,
        "events_quarantined": quarantined,
        "events_stored_twice": twice,
        "lost": run.events_acked - stored - quarantined,
        "rss_mb": {"first": round(rss[0], 1) if rss else None, "after_warmup": round(warm[0], 1) if warm else None,
                   "last": round(rss[-1], 1) if rss else None, "max": round(max(rss), 1) if rss else None},
        # growth means something only after the warm-up (first explanations import Captum, pools fill up)
        "rss_growth_pct": round(100 * (warm[-1] - warm[0]) / warm[0], 1) if args.soak and len(warm) > 1 else None,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "targets": {"recommend_p99_ms": 50, "throughput_rps": 200, "errors": 0, "lost": 0, "soak_rss_growth_pct": 10},
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
