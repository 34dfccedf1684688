"""Background training jobs, started from the studio: one at a time per jobs folder, each in its own process.

A job is a folder under ``jobs_dir`` (the app keeps it in ``models/.jobs``):

    spec.json       what to train (`JobSpec`) or update (`UpdateSpec`, `start_update`)
    pid             the worker's process id
    progress.jsonl  one line per step the worker reports (`train.ProgressCallback`), appended and flushed
    result.json     written once, atomically, when the worker ends: {"state": done|failed|cancelled, ...}

Everything a watcher needs is on disk, so a job survives page reloads, navigation and even a restart of the
studio; the worker writes its model folder atomically (`registry.save_model`), so a cancelled or failed job
never leaves a half-written model. The worker reads the events once and closes the database before training,
so the studio can still record pushes while a model trains.

    python -m recsys_core.jobs JOB_DIR      # the worker (started by `start`)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from recsys_core.sequences import PROTOCOLS, parse_cut

MODEL_TYPES = ("context_transformer", "sasrec", "covisit", "context_pop", "pop")
NEURAL = ("context_transformer", "sasrec")
CANCEL_WAIT_S = 10.0
_CHILDREN: dict[int, subprocess.Popen] = {}  # workers this process started, reaped when watched


class JobBusyError(RuntimeError):
    """Another training job is still running (one at a time per server)."""


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """What a training job trains; `recsys_core.train.train` arguments in plain JSON types."""

    model_type: str
    protocol: str
    out: str
    db: str
    epochs: int = 10
    seed: int = 7
    context: tuple[str, ...] | None = None  # None: the decision-time default
    cut: str | None = None  # time_split's cut, ISO (without an offset: the data's local time); None: the default

    def check(self) -> "JobSpec":
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model type {self.model_type!r} is not one of {', '.join(MODEL_TYPES)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if not 1 <= int(self.epochs) <= 200:
            raise ValueError(f"epochs must be between 1 and 200, not {self.epochs}")
        if self.cut is not None:
            if self.protocol != "time_split":
                raise ValueError(f"a cut applies to the time_split protocol, not to {self.protocol}")
            parse_cut(self.cut, "UTC")  # the form only; the worker reads it in the data's timezone
        return self


@dataclasses.dataclass(frozen=True)
class UpdateSpec:
    """What an update job does: `recsys_core.update.update` of the model at ``parent`` with the events before
    ``until`` (ISO), written to ``out``. ``model_type`` is the parent's (filled in by `start_update`)."""

    parent: str
    until: str
    out: str
    db: str
    epochs: int = 1  # update.DEFAULT_EPOCHS
    seed: int = 42
    model_type: str = "context_transformer"
    kind: str = "update"

    def check(self) -> "UpdateSpec":
        from recsys_core.update import check_parent, parse_until, utc_seconds

        meta = check_parent(self.parent)
        if not 1 <= int(self.epochs) <= 50:
            raise ValueError(f"epochs must be between 1 and 50, not {self.epochs}")
        until = parse_until(self.until, meta["features"]["calendar"]["timezone"])
        if until <= utc_seconds(meta["training_cutoff"]):
            raise ValueError(f"--until {self.until} is not after the model's training cut-off {meta['training_cutoff']}")
        return self


def start_update(model_dir: str | os.PathLike, until: str, out: str | os.PathLike, db: str | os.PathLike,
                 jobs_dir: str | os.PathLike, epochs: int | None = None, seed: int = 42) -> str:
    """Start a background update ("Update now" on the Monitoring page): fine-tune the model at ``model_dir`` on
    the events after its training cut-off and before ``until`` (ISO date/datetime, local time without an
    offset) and write the new version to ``out``. Returns the job id; watch it with `status` (progress per
    epoch; ``valid_NDCG@10`` is None: an update has no validation window) and stop it with `cancel`, as a
    training job. Raises ValueError (one line) for a model that cannot be updated (count model, router, DP),
    an ``until`` not after its cut-off or an existing ``out``; `JobBusyError` while another job runs."""
    from recsys_core.update import DEFAULT_EPOCHS, check_parent

    meta = check_parent(model_dir)
    spec = UpdateSpec(str(model_dir), str(until), str(out), str(db), int(epochs or DEFAULT_EPOCHS), int(seed), meta["model_type"])
    return start(spec, jobs_dir)


def default_spec(n_events: int, db: str, models_root: str | os.PathLike, model_type: str = "context_transformer") -> JobSpec:
    """Sensible defaults for a database of ``n_events``: more passes over small data, fewer over large data
    (an epoch's cost grows with the events; early stopping still picks the best epoch)."""
    epochs = 20 if n_events <= 50_000 else 10 if n_events <= 1_000_000 else 4
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return JobSpec(model_type, "next_session", str(Path(models_root) / f"{model_type}-{stamp}"), str(db), epochs)


# --- watching and controlling jobs (the studio's side) ------------------------------------------------


@contextmanager
def _locked(jobs_dir: Path) -> Iterator[None]:
    """Serialises start/cancel between the studio's sessions (and processes) sharing one jobs folder."""
    jobs_dir.mkdir(parents=True, exist_ok=True)
    with open(jobs_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie (exited, not yet reaped by an earlier server) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _latest(jobs_dir: Path) -> Path | None:
    jobs = sorted(p for p in jobs_dir.glob("job-*") if (p / "spec.json").is_file()) if jobs_dir.is_dir() else []
    return jobs[-1] if jobs else None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def status(jobs_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The latest job: {"id", "state" (running|done|failed|cancelled), "spec", "progress" (0-1), "epoch",
    "epochs", "loss", "valid_NDCG@10", "elapsed_s", "remaining_s", "history", "error", "out"}; None if none."""
    job = _latest(Path(jobs_dir))
    if job is None:
        return None
    spec = json.loads((job / "spec.json").read_text(encoding="utf-8"))
    steps = []
    if (job / "progress.jsonl").is_file():
        for line in (job / "progress.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                steps.append(json.loads(line))
            except ValueError:  # a line being written
                pass
    result = json.loads((job / "result.json").read_text(encoding="utf-8")) if (job / "result.json").is_file() else None
    pid = int((job / "pid").read_text()) if (job / "pid").is_file() else None
    started = dt.datetime.fromisoformat(spec["started_at"])
    if result is None and (pid is None or not _alive(pid)):
        if pid is not None and time.time() - started.timestamp() > 5:
            result = {"state": "failed", "error": "the training process stopped without a result (killed or out of memory)"}
        elif pid is None and time.time() - started.timestamp() > 30:
            result = {"state": "failed", "error": "the training process did not start"}
    history = [s for s in steps if s.get("stage") == "epoch"]
    last = steps[-1] if steps else {}
    epochs = int(spec["epochs"]) if spec["model_type"] in NEURAL else 1
    epoch_done = len(history)
    within = float(last.get("done", 0.0)) if last.get("stage") == "batch" else 0.0
    progress = 1.0 if result and result["state"] == "done" else min(0.999, (epoch_done + within) / epochs)
    end = dt.datetime.fromisoformat(result["ended_at"]) if result and result.get("ended_at") else dt.datetime.now(dt.timezone.utc)
    elapsed = (end - started).total_seconds()
    train_started = next((s["t"] for s in steps if s.get("stage") in ("batch", "epoch", "fitting")), None)
    remaining = None
    if result is None and progress > 0 and train_started is not None:
        trained_s = time.time() - train_started
        remaining = max(0.0, trained_s * (1 - progress) / progress)
    return {
        "id": job.name,
        "state": result["state"] if result else "running",
        "spec": spec,
        "progress": progress,
        "stage": last.get("stage", "starting"),
        "epoch": epoch_done,
        "epochs": epochs,
        "loss": history[-1]["loss"] if history else None,
        "valid_NDCG@10": history[-1]["valid_NDCG@10"] if history else None,
        "history": history,
        "elapsed_s": round(elapsed, 1),
        "remaining_s": None if remaining is None else round(remaining, 1),
        "error": (result or {}).get("error"),
        "out": (result or {}).get("out"),
    }


def start(spec: JobSpec | UpdateSpec, jobs_dir: str | os.PathLike) -> str:
    """Start ``spec`` in a new worker process; returns the job id. Raises `JobBusyError` while another runs,
    and ValueError for a bad spec or an existing output folder (a job never replaces a model)."""
    spec.check()
    jobs_dir = Path(jobs_dir)
    if Path(spec.out).exists():
        raise ValueError(f"model folder {spec.out} already exists; choose another name")
    with _locked(jobs_dir):
        current = status(jobs_dir)
        if current is not None and current["state"] == "running":
            raise JobBusyError(f"training job {current['id']} is still running; cancel it or wait for it to finish")
        job = jobs_dir / f"job-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
        job.mkdir()
        record = dataclasses.asdict(spec) | {"started_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        _write_json(job / "spec.json", record)
        log = open(job / "log.txt", "wb")
        child = subprocess.Popen([sys.executable, "-m", "recsys_core.jobs", str(job)], stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd())
        log.close()
        _CHILDREN[child.pid] = child
        (job / "pid").write_text(str(child.pid))
        return job.name


def cancel(jobs_dir: str | os.PathLike) -> bool:
    """Stop the running job (its worker removes any half-written folder); True if one was running."""
    jobs_dir = Path(jobs_dir)
    with _locked(jobs_dir):
        current = status(jobs_dir)
        if current is None or current["state"] != "running":
            return False
        job = jobs_dir / current["id"]
        pid = int((job / "pid").read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + CANCEL_WAIT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        _CHILDREN.pop(pid, None)
        out = Path(current["spec"]["out"])
        for tmp in out.parent.glob(f".{out.name}.tmp-*"):  # save_model's temporary folder, if killed mid-write
            shutil.rmtree(tmp, ignore_errors=True)
        if not (job / "result.json").is_file():
            _write_json(job / "result.json", {"state": "cancelled", "ended_at": dt.datetime.now(dt.timezone.utc).isoformat()})
        return True


# --- the worker -----------------------------------------------------------------------------------------


class _Cancelled(BaseException):
    """Raised in the worker by SIGTERM (BaseException: no `except Exception` in training swallows it)."""


def run(job_dir: str | os.PathLike) -> int:
    """Train what ``job_dir/spec.json`` asks, reporting progress; always leaves ``result.json``."""
    from recsys_core.train import TrainConfig, read_training_data, train

    job = Path(job_dir)
    spec = json.loads((job / "spec.json").read_text(encoding="utf-8"))

    def stop(signum: int, frame: Any) -> None:
        raise _Cancelled()

    signal.signal(signal.SIGTERM, stop)
    progress = open(job / "progress.jsonl", "a", encoding="utf-8")

    def report(step: dict[str, Any]) -> None:
        progress.write(json.dumps({"t": time.time(), **step}) + "\n")
        progress.flush()

    ended = lambda: dt.datetime.now(dt.timezone.utc).isoformat()  # noqa: E731
    try:
        report({"stage": "loading"})
        if spec.get("kind") == "update":
            from recsys_core.update import UpdateConfig, update

            summary = update(spec["parent"], spec["until"], spec["out"], UpdateConfig(epochs=int(spec["epochs"]), seed=int(spec["seed"])),
                             db=spec["db"], on_progress=report)
            _write_json(job / "result.json", {"state": "done", "out": summary["out"], "metrics": summary["metrics"], "ended_at": ended(),
                                              "update": {k: summary[k] for k in ("events_added", "new_items", "seconds", "protocol_note")}})
            return 0
        data, fingerprint = read_training_data(spec["db"])
        if spec["model_type"] not in NEURAL:
            report({"stage": "fitting"})
        cfg = TrainConfig(seed=int(spec["seed"]), epochs=int(spec["epochs"]))
        context = list(spec["context"]) if spec.get("context") is not None else None
        cut = parse_cut(spec["cut"], data.features.calendar.timezone) if spec.get("cut") else None
        summary = train(None, spec["model_type"], spec["protocol"], spec["out"], cfg, progress=False, data=data,
                        context=context, on_progress=report, fingerprint=fingerprint, cut=cut)
        _write_json(job / "result.json", {"state": "done", "out": summary["out"], "metrics": summary["metrics"], "ended_at": ended()})
        return 0
    except _Cancelled:
        _write_json(job / "result.json", {"state": "cancelled", "ended_at": ended()})
        return 1
    except Exception as exc:  # noqa: BLE001 — the watcher shows this one line
        line = " ".join(str(exc).split()) or type(exc).__name__
        _write_json(job / "result.json", {"state": "failed", "error": f"{type(exc).__name__}: {line}"[:500], "ended_at": ended()})
        return 1
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
