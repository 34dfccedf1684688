"""Start `python -m recsys_core serve` as a real process for tests (and stop it, gracefully or with kill -9)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """One `serve` process on a free port; `url`, `kill()` (SIGKILL) and `stop()` (SIGTERM: merges, then exits)."""

    def __init__(self, db: Path, key: str, log_path: Path, model_dir: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [sys.executable, "-m", "recsys_core", "serve", "--db", str(db), "--port", str(self.port)]
        if model_dir is not None:
            cmd += ["--model-dir", str(model_dir)]
        env = {**os.environ, "SCENEPUSH_API_KEY": key}
        with open(log_path, "a") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            assert self.proc.poll() is None, f"serve exited early:\n{log_path.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"serve not healthy after 180 s:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def serve_process(db: Path, key: str, log_path: Path, model_dir: Path | None = None) -> Iterator[ServeProcess]:
    server = ServeProcess(db, key, log_path, model_dir)
    try:
        yield server
    finally:
        server.stop()


def wait_merged(url: str, key: str, timeout_s: float = 30) -> None:
    """Until every landed event is merged into the database (`pending_events` of /health is 0)."""
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{url}/health", timeout=10).json()["pending_events"]:
        assert time.monotonic() < deadline, "landed events were not merged in time"
        time.sleep(0.1)
