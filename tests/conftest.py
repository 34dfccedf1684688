"""Shared fixtures: the real log samples beside the checkout, temporary databases, and the sample world with the
bundled model (built once per test session for the tests that check explanations on it)."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def sample_world_con(tmp_path_factory):
    """A read-only connection to the sample world, built once."""
    from recsys_core import synth
    from recsys_core.store import connect

    db = tmp_path_factory.mktemp("sample-world") / "sample.duckdb"
    synth.build_sample_database(db)
    con = connect(db, read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="session")
def bundled_model():
    """The bundled model (or the folder `SCENEPUSH_MODEL_DIR` names)."""
    from recsys_core import recommend

    path = Path(os.environ.get("SCENEPUSH_MODEL_DIR") or recommend.bundled_model_dir())
    assert (path / "metadata.json").is_file(), f"no model at {path}: run `make model` to train the bundled model"
    return recommend.load_model(path)
