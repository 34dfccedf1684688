"""Scene-switching router (``router``): a different member model answers when the shopper's situation changes.

The router holds already-trained member models (their folders, recorded by path, version and weights SHA-256)
and a route table: for each slice of the route-by fields (e.g. hour band × device), the member with the best
validation NDCG@10 on that slice's validation cases. A slice with fewer than ``min_cases`` validation cases, or one
never seen in validation, goes to the fallback: the best member overall on validation.

Routing reads only the batch's CONTEXT ids (the moment being predicted), turned into the same labels as
`EvalCases.slices()`, so evaluation, serving, recommend, push and explain route every row alike.

Persistence: the folder's safetensors hold ``route`` (K,) — the member index of each slice in config order —
and ``spec`` (32,) — the SHA-256 of the routing and of the members' weights — so the folder's version changes
whenever the routing or a member does. The members are loaded from their own folders (no copy, no pickle);
loading refuses a member folder that is missing or no longer holds the recorded version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from recsys_core.features import CONTEXT_SLICES, context_slice_labels
from recsys_core.models.base import Batch, Recommender

if TYPE_CHECKING:  # pragma: no cover
    from recsys_core.features import FeatureSpace
    from recsys_core.registry import LoadedModel
    from recsys_core.sequences import Split

# Fewer validation cases than this and a slice goes to the fallback. Per-case NDCG@10 on the sample world has a
# standard deviation of 0.25-0.32 (measured for context_pop ... context_transformer), so a slice mean over 50 cases
# carries a standard error of about 0.04 — already as large as most per-slice gaps between members (0.02-0.07);
# below 50 a slice's "best member" is mostly noise. (evaluate.MIN_SLICE_CASES, 30, only names winners in a table;
# here the choice decides who answers.)
MIN_SLICE_CASES = 50
ROUTE_ALIASES = {"hour": "hour_bucket"}
TIME_ROUTES = ("hour_bucket", "day_type", "promo_day")  # slice names of `EvalCases.slices()` read from the context
HEADLINE = "NDCG@10"


class RouterError(ValueError):
    """The router cannot be built or loaded as asked (one clear line)."""


def route_fields(features: "FeatureSpace", route_by: Sequence[str]) -> list[str]:
    """The route-by fields as slice names (``hour`` → hour_bucket), checked: time slices and the scene fields known
    when a push is decided (a field known only once the shopper acts cannot choose who answers)."""
    names = [ROUTE_ALIASES.get(f.strip(), f.strip()) for f in route_by if f.strip()]
    allowed = list(TIME_ROUTES) + [f.name for f in features.scene_fields if f.known_at_decision]
    if not names:
        raise RouterError(f"--route-by needs at least one field; choose from {allowed}")
    for name in names:
        if name not in allowed:
            late = [f.name for f in features.scene_fields if not f.known_at_decision]
            why = " (known only once the shopper acts)" if name in late else ""
            raise RouterError(f"--route-by {name!r} cannot route{why}; choose from {allowed} (hour = hour_bucket)")
    if len(set(names)) != len(names):
        raise RouterError(f"--route-by names a field twice: {names}")
    return names


def context_source(route: str) -> str:
    """The context id field a route-by slice is read from."""
    return CONTEXT_SLICES.get(route, route)


def slice_labels(features: "FeatureSpace", context: Mapping[str, torch.Tensor | np.ndarray], routes: Sequence[str]) -> list[tuple[str, ...]]:
    """One slice key per row from context ids (B,): the labels `EvalCases.slices()` gives the same ids
    (a missing context field is unknown, id 0)."""
    n = len(next(iter(context.values()))) if context else 0
    cols = [[str(x) for x in context_slice_labels(features, route, np.asarray(context.get(context_source(route), np.zeros(n, np.int64))))]
            for route in routes]
    return list(zip(*cols)) if cols else [()] * n


def slice_key(labels: Sequence[str]) -> str:
    """A slice's name in the route table and on the Why page: ``evening × mobile``."""
    return " × ".join(labels)


@dataclass
class RouterConfig:
    """members: [{"label", "path", "model_type", "version", "weights_sha256"}]; routes: one entry per slice seen
    in validation ({"slice": {field: label}, "member": index, "rule": "best" | "thin", "n_valid": cases,
    "valid_NDCG@10": {member label: mean}}); fallback: index of the best member overall on validation."""

    members: list[dict[str, Any]]
    route_by: list[str]
    routes: list[dict[str, Any]]
    fallback: int
    n_items: int
    history_len: int
    context_fields: list[str] = field(default_factory=list)  # what the members read plus what routing reads
    min_cases: int = MIN_SLICE_CASES
    valid_overall: dict[str, float] = field(default_factory=dict)  # member label -> validation NDCG@10


@dataclass
class Route:
    """Which member answers a context, and why (what the Why page, recommend and explain say)."""

    member: int
    label: str
    model_type: str
    path: str
    slice: dict[str, str]
    rule: str  # "best": the slice's best member on validation; "thin": too few cases; "unseen": not in validation
    n_valid: int
    valid_scores: dict[str, float]
    fallback: str
    min_cases: int

    def as_dict(self) -> dict[str, Any]:
        return {"member": self.label, "model_type": self.model_type, "path": self.path, "slice": self.slice, "rule": self.rule,
                "n_valid": self.n_valid, "valid_NDCG@10": {k: round(v, 4) for k, v in self.valid_scores.items()},
                "fallback": self.fallback}


class Router(Recommender):
    """Scores each row with the member its context routes to (rows grouped by member, one call each)."""

    model_type = "router"

    def __init__(self, cfg: RouterConfig, members: Sequence["LoadedModel"]):
        super().__init__(cfg.n_items, cfg.history_len)
        assert len(members) == len(cfg.members), "one loaded model per recorded member"
        self.cfg = cfg
        self.members = list(members)  # a plain list: the members' weights stay in their own folders
        self.features = members[0].features
        self._index = {tuple(r["slice"][f] for f in cfg.route_by): k for k, r in enumerate(cfg.routes)}
        self.register_buffer("route_member", torch.tensor([int(r["member"]) for r in cfg.routes], dtype=torch.long))  # (K,)
        self.register_buffer("spec", torch.tensor(list(spec_digest(cfg)), dtype=torch.uint8))  # (32,)

    def train(self, mode: bool = True) -> "Router":
        """The router is never trained; its members stay in eval mode whatever is asked."""
        super().train(mode)
        for m in self.members:
            m.model.eval()
        return self

    # --- routing -------------------------------------------------------------------------------

    def route_rows(self, context: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B,) member index of each row of a (B,) context."""
        keys = slice_labels(self.features, {k: v.cpu() for k, v in context.items()}, self.cfg.route_by)
        slots = [self._index.get(key, -1) for key in keys]
        table = self.route_member.cpu()
        return torch.tensor([int(table[s]) if s >= 0 else self.cfg.fallback for s in slots], dtype=torch.long)

    def route(self, context: Mapping[str, int | torch.Tensor]) -> Route:
        """The member that answers ONE context (field -> id, as `recommend.context_ids` gives), and why."""
        ctx = {k: np.asarray([int(v)]) for k, v in context.items()}
        key = slice_labels(self.features, ctx, self.cfg.route_by)[0]
        slot = self._index.get(key, -1)
        entry = self.cfg.routes[slot] if slot >= 0 else None
        member = int(self.route_member[slot]) if slot >= 0 else self.cfg.fallback
        rule = entry["rule"] if entry else "unseen"
        info = self.cfg.members[member]
        return Route(member, info["label"], info["model_type"], info["path"], dict(zip(self.cfg.route_by, key)), rule,
                     int(entry["n_valid"]) if entry else 0, dict(entry["valid_NDCG@10"]) if entry else {},
                     self.cfg.members[self.cfg.fallback]["label"], self.cfg.min_cases)

    # --- the interface ---------------------------------------------------------------------------

    @torch.no_grad()
    def score_all(self, batch: Batch) -> torch.Tensor:
        assert not batch.per_position, "the router scores evaluation and serving batches (context (B,)), not training windows"
        who = self.route_rows(batch.context)  # (B,)
        out = torch.empty(batch.size, self.n_items + 1)
        for m in torch.unique(who).tolist():
            rows = torch.nonzero(who == m).squeeze(1)
            member = self.members[m].model
            keep = min(member.history_len, batch.length)
            sub = Batch({k: v[rows, -keep:] for k, v in batch.history.items()}, {k: v[rows] for k, v in batch.context.items()})
            out[rows] = member.score_all(sub).to(out.dtype).cpu()
        out[:, 0] = float("-inf")
        return out

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Router":
        """Rebuild from `config_dict()`: load every member from its recorded folder and refuse a changed or missing one."""
        known = set(RouterConfig.__dataclass_fields__)
        cfg = RouterConfig(**{k: v for k, v in config.items() if k in known})
        return cls(cfg, [load_member(m, i) for i, m in enumerate(cfg.members)])

    def fit(self, split: "Split") -> dict[str, Any]:
        raise NotImplementedError("a router is built from trained members (`train --model router --members ...`), not fitted")


def spec_digest(cfg: RouterConfig) -> bytes:
    """SHA-256 of what decides the router's answers: the members' weights, the route-by fields, the table, the fallback."""
    spec = {"members": [m["weights_sha256"] for m in cfg.members], "route_by": cfg.route_by, "fallback": cfg.fallback,
            "routes": [[r["slice"], r["member"]] for r in cfg.routes]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).digest()


def load_member(record: Mapping[str, Any], index: int) -> "LoadedModel":
    """A member's folder as recorded; RouterError when it is missing or holds another version now."""
    from recsys_core.registry import ModelFolderError, load_model

    path = Path(record["path"])
    if not path.is_dir():
        raise RouterError(f"router member {index + 1} ({record['label']}) is missing: {path} does not exist; rebuild the router")
    try:
        lm = load_model(path)
    except ModelFolderError as exc:
        raise RouterError(f"router member {index + 1} ({record['label']}) cannot be loaded: {exc}") from None
    if lm.metadata["weights_sha256"] != record["weights_sha256"] or lm.version != record["version"]:
        raise RouterError(f"router member {index + 1} ({record['label']}) changed: {path} holds {lm.version}, the router was built "
                          f"on {record['version']}; rebuild the router")
    return lm


# --- building a router from trained members ---------------------------------------------------------


def check_members(members: Sequence["LoadedModel"]) -> None:
    """Members must be trained on the same data, under the same protocol (and cut), with the same feature encoding."""
    if len(members) < 2:
        raise RouterError("--members needs at least two model folders")
    if any(lm.model_type == "router" for lm in members):
        raise RouterError("a router's members are trained models, not routers")
    first = members[0]
    for lm in members[1:]:
        a, b = first.metadata.get("data_fingerprint") or {}, lm.metadata.get("data_fingerprint") or {}
        if (a.get("events_hash"), a.get("n_events")) != (b.get("events_hash"), b.get("n_events")):
            raise RouterError(f"--members {lm.path} was trained on other data (events {b.get('n_events')} hash {b.get('events_hash')}) "
                              f"than {first.path} (events {a.get('n_events')} hash {a.get('events_hash')})")
        if (lm.protocol, lm.metadata.get("cut")) != (first.protocol, first.metadata.get("cut")):
            raise RouterError(f"--members {lm.path} was trained under {_protocol_text(lm)}, {first.path} under {_protocol_text(first)}")
        if lm.features.to_dict() != first.features.to_dict():
            what = "items vocabulary" if lm.features.items != first.features.items else "feature encoding (scene vocabularies or calendar)"
            raise RouterError(f"--members {lm.path} has another {what} than {first.path}; members must share one")


def _protocol_text(lm: "LoadedModel") -> str:
    cut = lm.metadata.get("cut")
    return f"{lm.protocol} (cut {cut})" if cut else str(lm.protocol)


def member_labels(members: Sequence["LoadedModel"]) -> list[str]:
    """Member names: the model type, made unique with the folder name when repeated (as `compare` names them)."""
    types = [lm.model_type for lm in members]
    return [t if types.count(t) == 1 else f"{t}:{lm.path.name}" for t, lm in zip(types, members)]


def route_table(per_case: np.ndarray, keys: Sequence[tuple[str, ...]], labels: Sequence[str], route_by: Sequence[str],
                min_cases: int = MIN_SLICE_CASES) -> tuple[list[dict[str, Any]], int, dict[str, float]]:
    """(routes, fallback, overall) from validation NDCG@10 per case and member, ``per_case`` (n_cases, M), and each
    case's slice key. A slice with at least ``min_cases`` cases goes to its best member (ties: the fallback, then the
    first listed); a thinner one to the fallback, the best member overall."""
    per_case = np.asarray(per_case, dtype=np.float64)
    overall = per_case.mean(axis=0) if len(per_case) else np.zeros(len(labels))
    fallback = int(np.argmax(overall))
    keys_arr = np.array([slice_key(k) for k in keys], dtype=object)
    routes = []
    for key in sorted(set(keys), key=lambda k: tuple(k)):
        mask = keys_arr == slice_key(key)
        means = per_case[mask].mean(axis=0)
        n = int(mask.sum())
        if n < min_cases:
            member, rule = fallback, "thin"
        else:
            best = means.max()
            member = fallback if means[fallback] >= best else int(np.argmax(means))
            rule = "best"
        routes.append({"slice": dict(zip(route_by, key)), "member": member, "rule": rule, "n_valid": n,
                       "valid_NDCG@10": {lab: round(float(v), 6) for lab, v in zip(labels, means)}})
    return routes, fallback, {lab: round(float(v), 6) for lab, v in zip(labels, overall)}


def build_router(members: Sequence["LoadedModel"], split: "Split", route_by: Sequence[str],
                 min_cases: int = MIN_SLICE_CASES) -> Router:
    """A router over ``members`` whose table comes from their NDCG@10 on ``split``'s VALIDATION cases."""
    from recsys_core import evaluate

    check_members(members)
    routes_by = route_fields(members[0].features, route_by)
    if len(split.valid) == 0:
        raise RouterError(f"no validation cases under {split.protocol} to choose members by")
    labels = member_labels(members)
    per_case = np.stack([evaluate.rank_cases(lm.model, split.valid).per_case[HEADLINE] for lm in members], axis=1)  # (n, M)
    table = split.valid.slices()
    keys = list(zip(*(table[f].astype(str).tolist() for f in routes_by)))
    routes, fallback, overall = route_table(per_case, keys, labels, routes_by, min_cases)
    reads: list[str] = []
    for lm in members:
        reads += [f for f in lm.context_fields if f not in reads]
    reads += [context_source(f) for f in routes_by if context_source(f) not in reads]
    cfg = RouterConfig(
        members=[{"label": lab, "path": str(lm.path.resolve()), "model_type": lm.model_type, "version": lm.version,
                  "weights_sha256": lm.metadata["weights_sha256"]} for lab, lm in zip(labels, members)],
        route_by=routes_by, routes=routes, fallback=fallback, n_items=members[0].model.n_items,
        history_len=max(lm.model.history_len for lm in members), context_fields=reads, min_cases=int(min_cases),
        valid_overall=overall,
    )
    return Router(cfg, members).eval()


# --- delegation: what answers a moment ------------------------------------------------------------------


def is_router(loaded: Any) -> bool:
    return getattr(getattr(loaded, "model", None), "model_type", None) == "router"


def routed(loaded: "LoadedModel", scenario: Any) -> "LoadedModel":
    """The model that answers ``scenario``: the routed member for a router, ``loaded`` itself otherwise. Explanations
    of a router are the explanations of this member for that moment."""
    return loaded.model.members[routing(loaded, scenario).member] if is_router(loaded) else loaded


def routing(loaded: "LoadedModel", scenario: Any) -> Route:
    """The `Route` a router takes for ``scenario`` (a `context.Scenario`, or anything `explain.cases.scenario_of` reads)."""
    from recsys_core.explain.cases import scenario_of
    from recsys_core.recommend import context_ids

    return loaded.model.route(context_ids(loaded, scenario_of(scenario)))


def routing_note(loaded: "LoadedModel", scenario: Any) -> dict[str, Any]:
    """``{"routed": {...}}`` naming the member that answers ``scenario`` and why, for a router; ``{}`` otherwise."""
    if not is_router(loaded):
        return {}
    r = routing(loaded, scenario)
    return {"routed": {**r.as_dict(), "version": loaded.model.members[r.member].version, "router_version": loaded.version}}


def routing_sentence(route: Route, lang: str = "en") -> str:
    """One line: which member answered and why, e.g. "evening × mobile: sasrec had validation NDCG@10 0.21 vs 0.18
    (412 cases)" or "thin slice (12 cases): fallback to the best overall member"."""
    from recsys_core.i18n import TRANSLATIONS, label, t

    def shown(field: str, value: str) -> str:  # the Models page's words for time slices, the scene's own labels
        key = f"models.value.{value}"
        return t(key, lang) if field in TIME_ROUTES and key in TRANSLATIONS else label(field, value, lang)

    where = slice_key([shown(f, v) for f, v in route.slice.items()])
    if route.rule == "best":
        others = [v for k, v in route.valid_scores.items() if k != route.label]
        return t("router.why.best", lang, slice=where, member=route.label, score=f"{route.valid_scores.get(route.label, 0.0):.3f}",
                 other=f"{max(others):.3f}" if others else "–", n=route.n_valid)
    if route.rule == "thin":
        return t("router.why.thin", lang, slice=where, n=route.n_valid, min=route.min_cases, member=route.label)
    return t("router.why.unseen", lang, slice=where, member=route.label)
