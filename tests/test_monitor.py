"""`recsys_core.monitor` and `python -m recsys_core monitor`: the planted launch is flagged in its week and field,
the planted stable stretch raises nothing, and the pieces (PSI, JS, windows, as-of, NDCG-drop alerts, the CLI)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from recsys_core import cli, monitor, synth, train
from recsys_core.sequences import SequenceData, parse_cut
from recsys_core.store import connect

LAUNCH_WEEK = ("2025-11-24T00:00:00+08:00", "2025-12-01T00:00:00+08:00")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The sample world and two count models cut at 2025-11-17 and 2025-10-27 (time_split)."""
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("monitor-world")
    db = folder / "sample.duckdb"
    synth.build_sample_database(db)
    con = connect(db, read_only=True)
    try:
        data = SequenceData.from_store(con)
        for name, cut in (("late", "2025-11-17"), ("early", "2025-10-27")):
            train.train(con, "context_pop", "time_split", folder / name, train.TrainConfig(seed=3), progress=False, data=data,
                        cut=parse_cut(cut, synth.TIMEZONE))
    finally:
        con.close()
    return db, folder


def run(world, model: str, *flags: str) -> dict:
    db, folder = world
    return monitor.monitor_cli(cli.build_parser().parse_args(["monitor", "--db", str(db), "--model-dir", str(folder / model), *flags]))


# --- the planted drift of the sample world -------------------------------------------------------------------------


def test_the_launch_is_flagged_in_its_week_on_the_category_mix_and_new_items(world):
    out = run(world, "late", "--as-of", "2025-11-30")
    assert out["training_cutoff"].startswith("2025-11-09T23:")  # trained before the validation week 11-10 .. 11-16
    assert [w["start"][:10] for w in out["windows"]] == ["2025-11-10", "2025-11-17", "2025-11-24"]
    launch = [a for a in out["alerts"] if (a["window_start"], a["window_end"]) == LAUNCH_WEEK]
    assert {a["field"] for a in launch} == {"category", "new_items"}
    assert all(a["kind"] == "psi" and a["value"] > a["threshold"] == 0.2 for a in launch)
    week_before = out["windows"][1]
    assert week_before["drift"]["category"]["psi"] < 0.05 and week_before["share"]["new_items"] == 0
    assert not [a for a in out["alerts"] if a["window_start"].startswith("2025-11-17")]  # nothing the week before
    assert out["windows"][2]["share"]["new_items"] > 0.03  # the launch items' share of that week's events
    assert out["windows"][2]["category_mix"]["Smart Wearables"] > 0.03


def test_a_model_whose_windows_cover_only_the_stable_stretch_gets_no_alert(world):
    out = run(world, "early", "--as-of", "2025-11-09")
    assert [w["start"][:10] for w in out["windows"]] == ["2025-10-20", "2025-10-27", "2025-11-03"]
    assert all(w["complete"] and w["n_cases"] > 1000 for w in out["windows"])
    assert out["alerts"] == []
    worst = max(d["psi"] for w in out["windows"] for d in w["drift"].values())
    assert worst < 0.05
    # the same model sees the launch once the data reaches it
    later = run(world, "early")
    assert any(a["field"] == "category" and (a["window_start"], a["window_end"]) == LAUNCH_WEEK for a in later["alerts"])


# --- quality per window --------------------------------------------------------------------------------------------


def test_quality_per_window_uses_the_time_split_cases_of_each_window(world):
    """The windows' session starts are exactly time_split's test cases at the first window's start."""
    db, folder = world
    out = run(world, "late")
    from recsys_core.registry import load_model
    from recsys_core.evaluate import per_case_metrics, rank_cases

    lm = load_model(folder / "late")
    con = connect(db, read_only=True)
    try:
        data = SequenceData.from_store(con, features=lm.features)
    finally:
        con.close()
    cases = data.split("time_split", cut=parse_cut("2025-11-24", synth.TIMEZONE)).test
    ends = data.ts[cases.targets] < parse_cut("2025-12-01", synth.TIMEZONE)
    ndcg = per_case_metrics(rank_cases(lm.model, cases).ranks)["NDCG@10"][ends].mean()
    launch = next(w for w in out["windows"] if w["start"] == LAUNCH_WEEK[0])
    assert launch["n_cases"] == int(ends.sum())
    assert launch["metrics"]["NDCG@10"] == pytest.approx(ndcg, abs=1e-4)
    assert sum(w["n_cases"] for w in out["windows"]) == out["n_cases"]
    assert 0 < launch["coverage@10"] < 1 and math.isclose(sum(launch["top10_category_mix"].values()), 1, abs_tol=1e-3)


def test_ndcg_drop_alerts_on_a_constructed_case():
    def window(start: str, ndcg: float, n_cases: int = 500) -> dict:
        return {"start": start, "end": start + "+7d", "n_cases": n_cases, "n_events": 5000, "metrics": {"NDCG@10": ndcg, "HR@10": 0.3},
                "drift": {"hour": {"psi": 0.01, "js": 0.05}}}

    windows = [window("w1", 0.20), window("w2", 0.17), window("w3", 0.15), window("w4", 0.10, n_cases=10), window("w5", None)]
    alerts = monitor.find_alerts(windows, monitor.Thresholds(ndcg_drop=0.2, psi=0.2))
    assert [(a["window_start"], a["kind"], a["field"]) for a in alerts] == [("w3", "ndcg_drop", "NDCG@10")]  # 25 % > 20 %; w2 is 15 %
    assert alerts[0]["value"] == pytest.approx(0.25) and alerts[0]["threshold"] == 0.2 and alerts[0]["first_ndcg"] == 0.20
    assert len(monitor.find_alerts(windows, monitor.Thresholds(ndcg_drop=0.1))) == 2  # w2 too
    # the first window with enough cases is the reference
    alerts = monitor.find_alerts([window("w0", 0.5, n_cases=5)] + windows, monitor.Thresholds())
    assert [a["window_start"] for a in alerts] == ["w3"]


def test_psi_alerts_name_window_and_field_and_follow_the_threshold():
    w = {"start": "a", "end": "b", "n_cases": 100, "n_events": 5000, "metrics": {"NDCG@10": 0.2, "HR@10": 0.3},
         "drift": {"hour": {"psi": 0.05, "js": 0.1}, "device": {"psi": 0.3, "js": 0.2}, "weekday": {"psi": None, "js": None}}}
    assert [(a["field"], a["value"]) for a in monitor.find_alerts([w], monitor.Thresholds())] == [("device", 0.3)]
    assert {a["field"] for a in monitor.find_alerts([w], monitor.Thresholds(psi=0.01))} == {"hour", "device"}
    assert monitor.find_alerts([dict(w, n_events=50)], monitor.Thresholds()) == []  # too few events to judge


# --- PSI and JS with known values ----------------------------------------------------------------------------------


def test_psi_known_values():
    assert monitor.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), rel=1e-6)
    assert monitor.psi([10, 30], [1, 3]) == pytest.approx(0.0)  # counts or shares
    assert monitor.psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    # an empty bin counts as eps: finite, large
    eps = monitor.PSI_EPS
    a, e = np.array([0.1, 0.9]), np.array([eps, 1.0])
    e = e / e.sum()
    assert monitor.psi([0.1, 0.9], [0.0, 1.0]) == pytest.approx(float(((a - e) * np.log(a / e)).sum()), rel=1e-9)
    assert monitor.psi([0.1, 0.9], [0.25, 0.75]) == pytest.approx(monitor.psi([0.25, 0.75], [0.1, 0.9]))  # symmetric


def test_js_distance_known_values():
    assert monitor.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert monitor.js_distance([0.3, 0.7], [3, 7]) == pytest.approx(0.0, abs=1e-7)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JSD = (log2(4/3) + (0.5 log2(2/3) + 0.5 log2 2)) / 2
    jsd = (math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5) / 2
    assert monitor.js_distance([1, 0], [0.5, 0.5]) == pytest.approx(math.sqrt(jsd), rel=1e-9)
    from scipy.spatial.distance import jensenshannon

    p, q = np.array([0.1, 0.2, 0.7]), np.array([0.3, 0.3, 0.4])
    assert monitor.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9)


def test_drift_aligns_values_either_side_lacks():
    d = monitor.drift(pd.Series({"a": 5, "new": 5}), pd.Series({"a": 10, "gone": 0}))
    assert d["psi"] == pytest.approx(monitor.psi([5, 5, 0], [10, 0, 0]))
    assert d["js"] == pytest.approx(monitor.js_distance([5, 5], [10, 0]))


# --- windows and as-of ---------------------------------------------------------------------------------------------


def ts(text: str, tz: str) -> int:
    return int(pd.Timestamp(text).tz_localize(tz).tz_convert("UTC").timestamp())


def test_windows_start_at_local_midnight_after_the_cutoff_and_keep_midnights_across_dst():
    tz = "Europe/Berlin"  # daylight saving ends 2025-10-26
    first = monitor.next_local_midnight(ts("2025-10-19 23:59:59", tz), tz)
    assert first == ts("2025-10-20 00:00", tz)
    assert monitor.next_local_midnight(ts("2025-10-20 00:00", tz), tz) == ts("2025-10-21 00:00", tz)  # strictly after
    bounds = monitor.window_bounds(first, ts("2025-11-05 12:00", tz), 7, tz)
    local = [(pd.Timestamp(s, unit="s", tz="UTC").tz_convert(tz), pd.Timestamp(e, unit="s", tz="UTC").tz_convert(tz)) for s, e in bounds]
    assert [(s.strftime("%m-%d %H:%M"), e.strftime("%m-%d %H:%M")) for s, e in local] == [
        ("10-20 00:00", "10-27 00:00"), ("10-27 00:00", "11-03 00:00"), ("11-03 00:00", "11-10 00:00")]
    assert bounds[0][1] - bounds[0][0] == 7 * 86400 + 3600  # the week with the extra hour
    assert len(monitor.window_bounds(first, ts("2025-10-26 00:00", tz), 3, tz)) == 2


def test_window_lengths_and_bad_ones():
    assert [monitor.parse_window(w) for w in ("7d", "3d", "24h", "48h", "2w", "1D")] == [7, 3, 1, 2, 14, 1]
    for bad in ("6h", "7x", "0d", "", "d7", "-1d"):
        with pytest.raises(ValueError, match="--window"):
            monitor.parse_window(bad)


def test_as_of_a_date_includes_that_day():
    tz = synth.TIMEZONE
    assert monitor.parse_as_of("2025-11-30", tz) == ts("2025-12-01 00:00", tz)
    assert monitor.parse_as_of("2025-11-30T12:00", tz) == ts("2025-11-30 12:00", tz)
    assert monitor.parse_as_of("2025-11-30T12:00+00:00", tz) == ts("2025-11-30 20:00", tz)
    with pytest.raises(ValueError, match="--as-of"):
        monitor.parse_as_of("yesterday", tz)


def test_as_of_limits_the_data_and_cuts_the_last_window_short(world):
    out = run(world, "late", "--as-of", "2025-11-26", "--window", "7d")
    assert out["as_of"] == "2025-11-27T00:00:00+08:00"
    last = out["windows"][-1]
    assert last["start"] == LAUNCH_WEEK[0] and not last["complete"] and last["days"] == 3
    assert last["drift"]["weekday"]["psi"] is None  # three weekdays are no weekday mix
    assert last["drift"]["hour"]["psi"] is not None
    full = run(world, "late")
    assert full["windows"][2]["n_events"] > last["n_events"] > 0
    three = run(world, "late", "--window", "3d", "--as-of", "2025-11-17")
    assert [w["start"][:10] for w in three["windows"]] == ["2025-11-10", "2025-11-13", "2025-11-16"]
    assert [w["days"] for w in three["windows"]] == [3, 3, 2] and not three["windows"][-1]["complete"]


# --- the CLI ---------------------------------------------------------------------------------------------------------


def test_cli_json_shape(world, capsys):
    db, folder = world
    code = cli.main(["monitor", "--db", str(db), "--model-dir", str(folder / "late"), "--json", "--as-of", "2025-11-30", "--psi", "0.3"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("model", "version", "window", "as_of", "training_cutoff", "evaluation", "windows", "alerts"):
        assert key in out, key
    assert out["model"] == "context_pop" and out["window"] == "7d"
    assert out["evaluation"] == "full ranking, session starts per window (history = everything before)"
    w = out["windows"][0]
    assert {"start", "end", "n_cases", "metrics", "drift", "share", "category_mix", "top10_category_mix", "coverage@10"} <= set(w)
    assert set(w["metrics"]) == {"NDCG@10", "HR@10"}
    assert {"hour", "weekday", "device", "channel", "location", "category", "new_items", "new_shoppers", "top10_category"} == set(w["drift"])
    assert all(set(d) == {"psi", "js"} for d in w["drift"].values())
    assert out["alerts"] and all(
        {"window_start", "window_end", "kind", "field", "value", "threshold"} <= set(a) and a["kind"] in ("ndcg_drop", "psi")
        and a["threshold"] == 0.3 and a["value"] > 0.3 for a in out["alerts"])
    assert [a["field"] for a in out["alerts"]] == ["category"]  # new items' 0.26 is under 0.3


def test_stored_windows_are_reused_and_thresholds_need_no_remeasuring(world, monkeypatch):
    db, _ = world
    run(world, "late", "--as-of", "2025-11-30")  # stored by the tests above or now
    stored = list((db.parent / "evaluations").glob("monitor__*.json"))
    assert stored and all("u0" not in p.read_text() for p in stored)  # counts and shares, no shopper id
    monkeypatch.setattr(monitor, "measure_windows", lambda *a, **k: pytest.fail("measured again"))
    strict = run(world, "late", "--as-of", "2025-11-30", "--psi", "0.01")
    assert len(strict["alerts"]) > len(run(world, "late", "--as-of", "2025-11-30")["alerts"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--window", "6h"], "--window '6h' is not a window length in whole days"),
        (["--as-of", "soon"], "--as-of 'soon' is not an ISO date"),
        (["--ndcg-drop", "1.5"], "--ndcg-drop 1.5 must be a share between 0 and 1"),
        (["--psi", "0"], "--psi 0.0 must be above 0"),
        (["--as-of", "2025-11-05"], "no events after the model's training cut-off"),
        (["--model-dir", "/nowhere/model"], "model folder /nowhere/model does not exist"),
    ],
)
def test_bad_input_gives_one_clear_line(world, capsys, flags, message):
    db, folder = world
    assert cli.main(["monitor", "--db", str(db), "--model-dir", str(folder / "late"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def test_a_model_trained_on_everything_has_nothing_to_monitor(world, capsys):
    db, folder = world
    con = connect(db, read_only=True)
    try:
        train.train(con, "pop", "next_session", folder / "all", train.TrainConfig(seed=3), progress=False)
    finally:
        con.close()
    assert cli.main(["monitor", "--db", str(db), "--model-dir", str(folder / "all")]) == 2
    err = capsys.readouterr().err
    assert "no events after the model's training cut-off" in err and "time_split" in err


def test_another_window_or_as_of_reuses_the_stored_ranking(world, monkeypatch):
    seven = run(world, "late")  # ranks every session start after the cut-off once (or finds them stored)
    monkeypatch.setattr(monitor, "rank_cases", lambda *a, **k: pytest.fail("ranked again"))
    fortnight = run(world, "late", "--window", "14d", "--as-of", "2025-12-07")
    assert [w["start"][:10] for w in fortnight["windows"]] == ["2025-11-10", "2025-11-24"]
    assert fortnight["windows"][0]["n_cases"] == seven["windows"][0]["n_cases"] + seven["windows"][1]["n_cases"]
    assert fortnight["windows"][1]["n_cases"] == seven["windows"][2]["n_cases"] + seven["windows"][3]["n_cases"]
    both = [seven["windows"][i] for i in (0, 1)]
    pooled = sum(w["metrics"]["NDCG@10"] * w["n_cases"] for w in both) / sum(w["n_cases"] for w in both)
    assert fortnight["windows"][0]["metrics"]["NDCG@10"] == pytest.approx(pooled, abs=2e-4)
