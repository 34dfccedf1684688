"""Background training jobs: a job trains in its own process to a normal model folder, one at a time, reports
progress on disk, can be cancelled without leaving a half-written folder, and a failure is one line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from recsys_core import jobs, synth
from recsys_core.registry import load_model
from tests.tiny_world import build_tiny_store


def wait_for(jobs_dir: Path, predicate, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = jobs.status(jobs_dir)
        if st is not None and predicate(st):
            return st
        time.sleep(0.1)
    raise AssertionError(f"job did not reach the expected state in {timeout} s: {jobs.status(jobs_dir)}")


@pytest.fixture()
def tiny_db(tmp_path: Path) -> Path:
    return build_tiny_store(tmp_path / "tiny.duckdb")


def test_job_trains_to_a_loadable_model_with_progress(tmp_path, tiny_db):
    out = tmp_path / "models" / "ct-job"
    spec = jobs.JobSpec("context_transformer", "next_session", str(out), str(tiny_db), epochs=2, seed=3)
    jobs.start(spec, tmp_path / "models" / ".jobs")
    st = wait_for(tmp_path / "models" / ".jobs", lambda s: s["state"] != "running")
    assert st["state"] == "done", st
    assert st["progress"] == 1.0 and st["epoch"] == 2 and len(st["history"]) == 2
    assert st["history"][0]["loss"] > 0 and 0 <= st["valid_NDCG@10"] <= 1
    lm = load_model(out)
    assert lm.model_type == "context_transformer" and lm.metadata["training"]["epochs_run"] == 2
    assert [h["epoch"] for h in lm.metadata["training"]["history"]] == [1, 2]  # learning curve recorded


def test_count_model_job(tmp_path, tiny_db):
    out = tmp_path / "m" / "pop"
    jobs.start(jobs.JobSpec("pop", "next_event", str(out), str(tiny_db)), tmp_path / "jobs")
    st = wait_for(tmp_path / "jobs", lambda s: s["state"] != "running")
    assert st["state"] == "done" and st["progress"] == 1.0 and load_model(out).model_type == "pop"


def test_failed_job_says_why_in_one_line(tmp_path, tiny_db):
    spec = jobs.JobSpec("context_transformer", "next_session", str(tmp_path / "m" / "x"), str(tiny_db), epochs=1,
                        context=("no_such_field",))
    jobs.start(spec, tmp_path / "jobs")
    st = wait_for(tmp_path / "jobs", lambda s: s["state"] != "running")
    assert st["state"] == "failed" and "no_such_field" in st["error"] and "\n" not in st["error"]
    assert not (tmp_path / "m" / "x").exists()


def test_bad_specs_are_refused(tmp_path, tiny_db):
    with pytest.raises(ValueError, match="model type"):
        jobs.start(jobs.JobSpec("gpt", "next_event", str(tmp_path / "a"), str(tiny_db)), tmp_path / "jobs")
    with pytest.raises(ValueError, match="epochs"):
        jobs.start(jobs.JobSpec("sasrec", "next_event", str(tmp_path / "a"), str(tiny_db), epochs=0), tmp_path / "jobs")
    (tmp_path / "exists").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        jobs.start(jobs.JobSpec("pop", "next_event", str(tmp_path / "exists"), str(tiny_db)), tmp_path / "jobs")


def test_one_job_at_a_time_and_cancel_leaves_no_folder(tmp_path):
    db = tmp_path / "sample.duckdb"
    synth.build_sample_database(db)  # an epoch takes seconds here: the job is surely running when cancelled
    jobs_dir = tmp_path / "models" / ".jobs"
    out = tmp_path / "models" / "ct"
    jobs.start(jobs.JobSpec("context_transformer", "next_session", str(out), str(db), epochs=50), jobs_dir)
    wait_for(jobs_dir, lambda s: s["stage"] == "batch")
    with pytest.raises(jobs.JobBusyError, match="still running"):
        jobs.start(jobs.JobSpec("pop", "next_event", str(tmp_path / "models" / "pop"), str(db)), jobs_dir)
    running = jobs.status(jobs_dir)
    assert 0 < running["progress"] < 1 and running["remaining_s"] is not None
    assert jobs.cancel(jobs_dir) is True
    st = jobs.status(jobs_dir)
    assert st["state"] == "cancelled"
    assert not out.exists() and not list(out.parent.glob(".ct.tmp-*"))
    assert jobs.cancel(jobs_dir) is False
    # and the server can start the next one
    jobs.start(jobs.JobSpec("pop", "next_event", str(tmp_path / "models" / "pop"), str(db)), jobs_dir)
    assert wait_for(jobs_dir, lambda s: s["state"] != "running")["state"] == "done"


def test_status_of_an_empty_folder(tmp_path):
    assert jobs.status(tmp_path / "none") is None


def test_default_spec_scales_epochs_with_the_data(tmp_path):
    small = jobs.default_spec(10_000, "x.duckdb", tmp_path)
    big = jobs.default_spec(5_000_000, "x.duckdb", tmp_path)
    assert small.epochs > big.epochs and small.check() and Path(small.out).parent == tmp_path
    assert json.loads(json.dumps(small.__dict__))["protocol"] == "next_session"


def test_time_split_job_trains_at_its_cut(tmp_path, tiny_db):
    out = tmp_path / "m" / "pop-ts"
    jobs.start(jobs.JobSpec("pop", "time_split", str(out), str(tiny_db), cut="2025-11-12"), tmp_path / "jobs")
    st = wait_for(tmp_path / "jobs", lambda s: s["state"] != "running")
    assert st["state"] == "done", st
    assert st["spec"]["cut"] == "2025-11-12"
    meta = load_model(out).metadata
    assert meta["protocol"] == "time_split" and meta["cut"] == "2025-11-12T00:00:00+08:00"  # local midnight of the data


def test_a_cut_needs_time_split_and_an_iso_date(tmp_path, tiny_db):
    with pytest.raises(ValueError, match="a cut applies to the time_split protocol, not to next_session"):
        jobs.start(jobs.JobSpec("pop", "next_session", str(tmp_path / "a"), str(tiny_db), cut="2025-11-12"), tmp_path / "jobs")
    with pytest.raises(ValueError, match="--cut 'soon' is not an ISO date"):
        jobs.start(jobs.JobSpec("pop", "time_split", str(tmp_path / "a"), str(tiny_db), cut="soon"), tmp_path / "jobs")
    assert jobs.status(tmp_path / "jobs") is None  # nothing started


def test_update_job_writes_a_new_version_with_lineage(tmp_path, tiny_db):
    from recsys_core.train import TrainConfig, read_training_data, train

    data, fingerprint = read_training_data(str(tiny_db))
    parent = tmp_path / "models" / "parent"
    train(None, "context_transformer", "time_split", parent, TrainConfig(epochs=1, max_len=20, d_model=16), progress=False,
          data=data, fingerprint=fingerprint)
    jobs_dir, out = tmp_path / "models" / ".jobs", tmp_path / "models" / "updated"
    jobs.start_update(parent, "2025-11-15", out, tiny_db, jobs_dir, epochs=2)
    st = wait_for(jobs_dir, lambda s: s["state"] != "running")
    assert st["state"] == "done", st
    assert st["spec"]["kind"] == "update" and st["epoch"] == 2 and st["progress"] == 1.0 and st["valid_NDCG@10"] is None
    assert st["out"] == str(out)
    lineage = load_model(out).metadata["lineage"]
    assert lineage["parent_dir"] == str(parent) and lineage["epochs"] == 2 and lineage["events_added"] > 0
    # refused before a process starts: the model's cut-off, a count model, an existing folder
    with pytest.raises(ValueError, match="not after the model's training cut-off"):
        jobs.start_update(parent, "2025-11-01", tmp_path / "models" / "x", tiny_db, jobs_dir)
    with pytest.raises(ValueError, match="already exists"):
        jobs.start_update(parent, "2025-11-15", out, tiny_db, jobs_dir)
    train(None, "pop", "time_split", tmp_path / "models" / "pop", progress=False, data=data, fingerprint=fingerprint)
    with pytest.raises(ValueError, match="count models are refit"):
        jobs.start_update(tmp_path / "models" / "pop", "2025-11-15", tmp_path / "models" / "y", tiny_db, jobs_dir)


def test_update_job_can_be_cancelled_without_leaving_a_folder(tmp_path):
    import dataclasses
    import datetime as dt

    from recsys_core.registry import save_model
    from recsys_core.train import TrainConfig, build_neural_model, read_training_data

    db = tmp_path / "sample.duckdb"
    synth.build_sample_database(db)  # an update epoch takes seconds here: the job is surely running when cancelled
    data, _ = read_training_data(str(db))
    split = data.split("time_split")
    cfg = TrainConfig(max_len=20, d_model=16)
    parent = tmp_path / "models" / "parent"  # an untrained time_split parent is enough to fine-tune
    save_model(build_neural_model("sasrec", data.features, cfg), data.features, parent,
               {"protocol": "time_split", "training": {"config": dataclasses.asdict(cfg)},
                "training_cutoff": dt.datetime.fromtimestamp(split.cutoff_ts, dt.timezone.utc).isoformat()})
    jobs_dir, out = tmp_path / "models" / ".jobs", tmp_path / "models" / "upd"
    jobs.start_update(parent, "2025-12-08", out, db, jobs_dir, epochs=20)
    wait_for(jobs_dir, lambda s: s["stage"] == "batch")
    assert jobs.cancel(jobs_dir) is True
    assert jobs.status(jobs_dir)["state"] == "cancelled"
    assert not out.exists() and not list(out.parent.glob(".upd.tmp-*"))
