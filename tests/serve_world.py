"""A tiny store and a tiny context transformer for the API tests (seconds to build, no training)."""

from __future__ import annotations

from pathlib import Path

import torch

from recsys_core.registry import save_model
from recsys_core.sequences import SequenceData
from recsys_core.store import connect
from recsys_core.train import TrainConfig, build_neural_model
from tests.tiny_world import build_tiny_store

KEY = "test-key-0123456789"
AT = "2025-11-20T08:00:00+08:00"


def build_world(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """(database, model folder) of the tiny world; the model is untrained but explainable."""
    db = build_tiny_store(root / "w.duckdb")
    con = connect(db, read_only=True)
    try:
        data = SequenceData.from_store(con)
    finally:
        con.close()
    torch.manual_seed(seed)
    model = build_neural_model("context_transformer", data.features, TrainConfig(d_model=16, max_len=8)).eval()
    save_model(model, data.features, root / "models" / "ct", {"protocol": "next_session"})
    return db, root / "models" / "ct"


def resave_model(model_dir: Path, db: Path, seed: int) -> None:
    """Write a new version of the model into the same folder (atomically, as training does)."""
    con = connect(db, read_only=True)
    try:
        data = SequenceData.from_store(con)
    finally:
        con.close()
    torch.manual_seed(seed)
    model = build_neural_model("context_transformer", data.features, TrainConfig(d_model=16, max_len=8)).eval()
    save_model(model, data.features, model_dir, {"protocol": "next_session", "seed": seed})


def events(prefix: str, n: int, user: str = "u1", start: int = 0) -> list[dict]:
    """``n`` valid events with ids ``prefix-<i>``."""
    return [
        {"event_id": f"{prefix}-{i}", "user": user, "item": f"c{i % 8}", "ts": f"2025-11-25T09:{i % 60:02d}:00+08:00",
         "behavior": "pv", "scene": {"device": "mobile"}}
        for i in range(start, start + n)
    ]
