"""Model folders on disk: ``model.safetensors`` (tensors) + ``metadata.json`` (everything else).

A folder is written into a temporary sibling directory and renamed into place,
so a reader never sees half a model. Loading never unpickles anything: the
metadata names the model type and its JSON config, `MODEL_REGISTRY` rebuilds
the module, and the tensors come from safetensors after their SHA-256 is checked.

metadata.json holds: format_version, package_version, model_type, version (a short
id used in push records), config, features (vocabularies incl. item id ↔ dense id,
calendar), protocol, data_fingerprint, training_cutoff (UTC ISO), trained_at,
metrics, training (hyper-parameters, epochs, timings), differential_privacy (DP-SGD runs only: the ε spent, δ,
noise and clipping, accountant), lineage (updated versions only, `recsys_core.update`: parent version and
folder, the events added, seconds), weights_sha256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recsys_core import __version__
from recsys_core.features import FeatureSpace
from recsys_core.models import MODEL_REGISTRY, Recommender, build_model
from recsys_core.privacy import trained_on_erased_data

FORMAT_VERSION = 2  # 2: scene fields are data (features.scene_fields), context_fields recorded
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"


class ModelFolderError(ValueError):
    """A model folder is missing, corrupt, or was written by an incompatible version."""


@dataclass
class LoadedModel:
    """A model ready to serve: the module (eval mode), its feature encoding and its metadata."""

    model: Recommender
    features: FeatureSpace
    metadata: dict[str, Any]
    path: Path

    @property
    def model_type(self) -> str:
        return self.metadata["model_type"]

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def protocol(self) -> str | None:
        return self.metadata.get("protocol")

    @property
    def context_fields(self) -> tuple[str, ...]:
        """The target-context fields the model reads (time and scene); the rest of a scenario is ignored."""
        return tuple(self.metadata.get("context_fields", ()))

    @property
    def explainable(self) -> bool:
        """Whether the explanations apply (a network with embeddings to attribute to, not a count model)."""
        return bool(getattr(self.model, "explainable", False))

    def summary(self) -> dict[str, Any]:
        """What a sidebar or a CLI shows about the model."""
        m = self.metadata
        return {
            "model_type": m["model_type"],
            "version": m["version"],
            "path": str(self.path),
            "protocol": m.get("protocol"),
            "context_fields": list(self.context_fields),
            "trained_at": m.get("trained_at"),
            "training_cutoff": m.get("training_cutoff"),
            "n_items": self.model.n_items,
            "metrics": m.get("metrics", {}),
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: Recommender, features: FeatureSpace, out_dir: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``model`` (+ ``features`` and ``metadata``) as a model folder at ``out_dir``, atomically.

    An existing folder at ``out_dir`` is replaced only once the new one is complete.
    Returns the folder path. ``metadata`` adds to / overrides the standard fields.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        sha = _sha256(tmp / WEIGHTS_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "model_type": model.model_type,
            "version": f"{model.model_type}-{sha[:10]}",
            "config": model.config_dict(),
            "features": features.to_dict(),
            # microseconds, not seconds: compared with erasure times (a model trained the same second after one is clean)
            "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            **metadata,
            "weights_sha256": sha,
        }
        (tmp / METADATA_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        for f in (WEIGHTS_FILE, METADATA_FILE):  # mkdtemp and safetensors create owner-only files
            os.chmod(tmp / f, 0o644)
        os.chmod(tmp, 0o755)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_metadata(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a model folder, checked for the fields loading needs."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelFolderError(f"model folder {path} does not exist; train one with `python -m recsys_core train`")
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise ModelFolderError(f"{path} is not a model folder: {METADATA_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{meta_path} is corrupt (not valid JSON): {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelFolderError(f"{meta_path} is corrupt: expected a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"{path} has model format {meta.get('format_version')!r}, this ScenePush reads format {FORMAT_VERSION}; retrain the model"
        )
    missing = [k for k in ("model_type", "config", "features", "weights_sha256", "version") if k not in meta]
    if missing:
        raise ModelFolderError(f"{meta_path} lacks {missing}")
    if meta["model_type"] not in MODEL_REGISTRY:
        raise ModelFolderError(f"{path} holds a {meta['model_type']!r} model; this ScenePush knows {sorted(MODEL_REGISTRY)}")
    return meta


def load_model(model_dir: str | os.PathLike) -> LoadedModel:
    """Load a model folder (no pickle): rebuild from config, check and load the tensors, eval mode."""
    path = Path(model_dir)
    meta = read_metadata(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFolderError(f"{path} is incomplete: {WEIGHTS_FILE} is missing")
    if _sha256(weights) != meta["weights_sha256"]:
        raise ModelFolderError(f"{weights} is corrupt: its SHA-256 does not match the metadata")
    try:
        features = FeatureSpace.from_dict(meta["features"])
        model = build_model(meta["model_type"], meta["config"])
        state = load_file(str(weights))
    except (SafetensorError, ValueError, TypeError, AssertionError, KeyError) as exc:
        raise ModelFolderError(f"{path} cannot be loaded: {exc}") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFolderError(f"{path} does not match its {meta['model_type']} config: {exc}") from exc
    if model.n_items != features.n_items:
        raise ModelFolderError(f"{path}: the model scores {model.n_items} items but its vocabulary has {features.n_items}")
    model.eval()
    return LoadedModel(model, features, meta, path)


def list_model_dirs(root: str | os.PathLike) -> list[Path]:
    """Model folders directly under ``root`` (those with a metadata file), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / METADATA_FILE).is_file())



def model_card(model_dir: str | os.PathLike, events_hash: str | None = None,
               erasures: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a researcher reads about a model folder without loading it: type, version, protocol, the context
    fields it reads, its training data (and whether it is the open database's: ``events_hash``), size,
    parameters, training time, epochs, seed, and the privacy spent (ε, δ) of a DP-SGD run. With the database's ``erasures``
    (`store.privacy.erasures`), ``trained_on_erased_data`` says whether it must be retrained. A folder that cannot be read
    gives ``{"error": ...}``."""
    from safetensors import safe_open

    path = Path(model_dir)
    try:
        meta = read_metadata(path)
        with safe_open(str(path / WEIGHTS_FILE), framework="pt") as weights:
            n_params = sum(_numel(weights.get_slice(name).get_shape()) for name in weights.keys())
    except (ModelFolderError, OSError, SafetensorError) as exc:
        return {"folder": str(path), "error": str(exc)}
    data = meta.get("data_fingerprint") or {}
    training = meta.get("training") or {}
    test = (meta.get("metrics") or {}).get("test") or {}
    return {
        "folder": str(path),
        "model_type": meta["model_type"],
        "version": meta["version"],
        "protocol": meta.get("protocol"),
        "cut": meta.get("cut"),  # time_split's cut (None for the per-shopper protocols)
        "context_fields": list(meta.get("context_fields") or []),
        "trained_at": meta.get("trained_at"),
        "data_events": data.get("n_events"),
        "same_data": (data.get("events_hash") == events_hash) if events_hash and data.get("events_hash") else None,
        "size_mb": round(sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6, 2),
        "parameters": int(n_params),
        "training_s": training.get("seconds"),
        "epochs_run": training.get("epochs_run"),
        "best_epoch": training.get("best_epoch"),
        "seed": (training.get("config") or {}).get("seed", meta.get("seed")),
        "test_NDCG@10": test.get("NDCG@10"),
        "trained_on_erased_data": trained_on_erased_data(meta, erasures) if erasures is not None else None,
        # differential privacy (train --dp-epsilon): the ε spent and δ, per shopper; None for ordinary training
        "dp_epsilon": (meta.get("differential_privacy") or {}).get("epsilon"),
        "dp_delta": (meta.get("differential_privacy") or {}).get("delta"),
        # warm-started updates (`recsys_core.update`): where this version comes from; None for a trained model
        "lineage": _lineage_summary(meta),
        "updated_from": lineage_text(_lineage_summary(meta)) if meta.get("lineage") else None,
    }


def _lineage_summary(meta: dict[str, Any]) -> dict[str, Any] | None:
    lin = meta.get("lineage")
    if not isinstance(lin, dict):
        return None
    keys = ("parent_version", "parent_dir", "since", "until", "events_added", "shoppers", "new_items", "new_scene_values", "seconds", "epochs")
    tz = ((meta.get("features") or {}).get("calendar") or {}).get("timezone") or "UTC"
    return {**{k: lin.get(k) for k in keys}, "timezone": tz, "cut": meta.get("cut")}


def lineage_text(lineage: dict[str, Any] | None, lang: str = "en") -> str:
    """One line for a model card: "Updated from v… with N events (since → until) in S s; K new items"
    (times in the data's local time); "" for a model that was not updated."""
    if not lineage:
        return ""
    import pandas as pd

    from recsys_core.i18n import format_int, t

    def local(iso: Any) -> str:
        try:
            return pd.Timestamp(iso).tz_convert(lineage.get("timezone") or "UTC").strftime("%Y-%m-%d %H:%M")
        except (ValueError, TypeError):
            return str(iso)

    return t("lineage.updated_from", lang, parent=lineage.get("parent_version"), events=format_int(lineage.get("events_added")),
             since=local(lineage.get("since")), until=local(lineage.get("until")), seconds=lineage.get("seconds"),
             new_items=format_int(lineage.get("new_items")))


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
