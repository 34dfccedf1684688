"""Models behind one interface (`recsys_core.models.base.Recommender`), listed explicitly.

MODEL_REGISTRY maps the ``model_type`` written in a model folder's metadata to the
class that rebuilds it with ``from_config``. No module scanning: add a model here.
"""

from __future__ import annotations

from typing import Any

from recsys_core.models.base import Batch, Recommender
from recsys_core.models.baselines import BASELINES
from recsys_core.models.context_transformer import ContextTransformer
from recsys_core.models.router import Router

# sasrec is the context transformer with use_time=False, use_scene=False (set by from_config).
MODEL_REGISTRY: dict[str, type[Recommender]] = {
    "context_transformer": ContextTransformer,
    "sasrec": ContextTransformer,
    **BASELINES,  # pop, context_pop, covisit
    "router": Router,  # scene-switching: trained members, one per slice of the context (models/router.py)
}


def model_class(model_type: str) -> type[Recommender]:
    """The class registered for ``model_type``; a clear error listing the known types otherwise."""
    try:
        return MODEL_REGISTRY[model_type]
    except KeyError:
        raise ValueError(f"unknown model type {model_type!r}; choose from {sorted(MODEL_REGISTRY)}") from None


def build_model(model_type: str, config: dict[str, Any]) -> Recommender:
    """An untrained model of ``model_type`` from its JSON config."""
    return model_class(model_type).from_config({**config, "model_type": model_type})


__all__ = ["Batch", "MODEL_REGISTRY", "Recommender", "build_model", "model_class"]
