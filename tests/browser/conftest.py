"""Real-browser fixtures: a sample database, a `streamlit run` server, Debian Chromium via playwright.

These tests must run wherever the suite runs (CI included): a missing Chromium is
a failure with the fix in the message, never a skip. Screenshots go to
`screenshots/` at the repository root (gitignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# True once Streamlit is idle (no status widget, no stale elements), every visible plotly chart is drawn,
# and the page's text and chart count have not changed for `quiet_ms`. A condition, not a fixed sleep:
# it returns as soon as the page is quiet, and it waits longer only while the page still changes.
_SETTLED = """quiet_ms => {
    const main = document.querySelector('[data-testid=stMain]');
    const busy = !main || document.querySelector('[data-testid=stStatusWidget]') || document.querySelector('[data-stale=true]')
        || [...document.querySelectorAll('[data-testid=stPlotlyChart]')]
            .some(c => c.offsetParent && !c.querySelector('.main-svg'));
    const state = busy ? null : main.innerText + '|' + document.querySelectorAll('.main-svg').length;
    const now = performance.now();
    if (state === null || !window.__settle || window.__settle.state !== state) {
        window.__settle = {state, since: now};
        return false;
    }
    return now - window.__settle.since >= quiet_ms;
}"""


def settle(page, quiet_ms: int = 300) -> None:
    """Wait until the page has settled (see `_SETTLED`)."""
    page.evaluate("() => { window.__settle = null; }")
    page.wait_for_function(_SETTLED, arg=quiet_ms, polling=50)


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory) -> Path:
    """The sample world built by the CLI into a temporary folder (once per test session).

    `SCENEPUSH_BROWSER_DB` may name an existing database to reuse (it is copied, never written).
    """
    folder = tmp_path_factory.mktemp("browser-db")
    db = folder / "sample.duckdb"
    reuse = os.environ.get("SCENEPUSH_BROWSER_DB")
    if reuse:
        shutil.copyfile(reuse, db)
        return db
    result = subprocess.run(
        [sys.executable, "-m", "recsys_core", "sample", "--db", str(db), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"building the sample database failed:\n{result.stderr[-3000:]}"
    return db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(db: Path, log_path: Path, env: dict[str, str] | None = None):
    """`streamlit run app.py` on a free port against ``db`` (``env`` added to the environment); yields its URL once
    healthy, stops it by PID after."""
    port = _free_port()
    env = {**os.environ, "RECSYS_DB": str(db), **(env or {})}
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"streamlit exited early:\n{log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"streamlit not healthy after 90 s:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    log_text = log_path.read_text()
    assert "Traceback" not in log_text, f"the server logged an error:\n{log_text[-5000:]}"


@pytest.fixture(scope="session")
def app_url(sample_db, tmp_path_factory):
    """One server for the test session (see `streamlit_server`)."""
    with streamlit_server(sample_db, tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


def _has_chinese_font() -> bool:
    result = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` (`make browser`)")
    if not _has_chinese_font():
        pytest.fail("no Chinese font: the zh screenshots would show empty boxes; `apt-get install -y fonts-noto-cjk`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
