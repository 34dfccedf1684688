"""The planted drift of the sample world (`synth.PLANTED_DRIFT`), measured on the shipped files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core import synth


@pytest.fixture(scope="module")
def weekly() -> pd.DataFrame:
    """Share of events per (week index 0..8, category) in local time."""
    (events, items, _), _ = synth.read_sample_files()
    ev = events.merge(items[["item_id", "category"]], on="item_id")
    local_day = (ev["ts"] + pd.Timedelta(hours=synth.UTC_OFFSET_HOURS)).dt.normalize()
    ev["week"] = (local_day - pd.Timestamp(synth.START_DATE)).dt.days // 7
    counts = ev.groupby(["week", "category"]).size().unstack(fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0)


def _psi(a: np.ndarray, e: np.ndarray, eps: float = 1e-4) -> float:
    a, e = np.maximum(a, eps), np.maximum(e, eps)
    a, e = a / a.sum(), e / e.sum()
    return float(((a - e) * np.log(a / e)).sum())


def test_every_drift_is_documented():
    readme = (synth.SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    for name in synth.PLANTED_DRIFT:
        assert f"`{name}`" in readme


def test_product_launch(weekly):
    launch = synth.LAUNCH["en"]
    first_week = synth.LAUNCH["day"] // 7
    assert (weekly.loc[: first_week - 1, launch] == 0).all()
    assert (weekly.loc[first_week:, launch] >= 0.03).all()


def test_rising_category(weekly):
    fashion = next(c["en"] for c in synth.CATEGORIES if c["key"] == synth.RISING["category"])
    stable = weekly.loc[0:3, fashion].mean()
    assert weekly.loc[8, fashion] >= 1.6 * stable


def test_stable_stretch(weekly):
    weeks = range(synth.STABLE_DAYS[0] // 7, synth.STABLE_DAYS[1] // 7)
    worst = max(_psi(weekly.loc[a].to_numpy(), weekly.loc[b].to_numpy()) for a in weeks for b in weeks if a < b)
    assert worst < 0.05
    # and the drift is large by the same measure: the launch week against the stable weeks
    assert _psi(weekly.loc[synth.LAUNCH["day"] // 7].to_numpy(), weekly.loc[list(weeks)].mean().to_numpy()) > 0.2
