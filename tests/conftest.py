"""Shared fixtures: paths to the real samples the team workspace's data folder and temporary databases."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"real log samples expected at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    return tmp_path / "test.duckdb"
