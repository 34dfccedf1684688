"""Differentially private training: `train --dp-epsilon E [--dp-delta D]` (DP-SGD with Opacus).

The privacy unit is the SHOPPER: each shopper contributes one sample, their newest training window
(`TrainingWindows.newest_per_shopper`), so clipping one sample's gradient bounds what one shopper can
change. Each step draws a Poisson sample (every shopper independently with rate q = batch / shoppers),
clips each shopper's gradient to norm C (``dp_max_grad_norm``), adds Gaussian noise σ·C and averages
(Opacus `DPOptimizer` around Adam). σ is chosen by Opacus for the planned steps (epochs × 1/q) so that
the RDP accountant's ε at δ stays within the requested ε; the ε actually spent is recorded.

Why per-sample gradients are computed here, not by Opacus's `GradSampleModule`: its hooks (including the
functorch mode, which is per layer) see a layer's activations and gradients, and assume every parameter
is used by its own module's forward on tensors whose first dimension is the sample. The context
transformer breaks both: the output layer reads the item, category and price tables directly
(``item_table()``, the tied softmax, plus ``item_bias``), and the heads run on the M target positions of a
batch, not on its B shoppers. So each sampled shopper's window gets its own forward and backward pass
(exact per-sample gradients, the model unchanged), and Opacus does the clipping, noise and accounting.
That costs one pass per shopper per step; the windows are trimmed of their padding first.

Not covered by ε: the vocabularies (which items exist) and the validation figures shown after each epoch.
DP runs keep the LAST epoch's weights — choosing the best epoch on validation data would spend privacy
the accountant does not count — and run every planned epoch (no early stopping).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recsys_core.models.base import Batch, Recommender
from recsys_core.sequences import Split, TrainingWindows

if TYPE_CHECKING:  # pragma: no cover
    from recsys_core.train import TrainConfig

ACCOUNTANT = "rdp"


def default_delta(n_shoppers: int) -> float:
    """δ well below 1 / shoppers (the usual rule), at most 1e-5."""
    return float(min(1e-5, 1.0 / (10.0 * max(1, n_shoppers))))


def _trimmed(batch: Batch) -> Batch:
    """One window without its leading padding columns (columns with neither an input nor a target).
    Padding carries nothing and is never attended to, so the loss and gradients are the same."""
    used = (batch.history["item"][0] > 0) | (batch.targets[0] > 0)
    nz = torch.nonzero(used)
    lo = int(nz[0]) if len(nz) else batch.length - 1
    cut = lambda d: {k: v[:, lo:] for k, v in d.items()}  # noqa: E731
    return Batch(cut(batch.history), cut(batch.context), batch.targets[:, lo:], None if batch.weights is None else batch.weights[:, lo:])


def per_sample_gradients(model: Recommender, windows: TrainingWindows, params: list[torch.nn.Parameter]) -> tuple[list[torch.Tensor], float]:
    """Gradients of each window's own loss: one (n, *shape) tensor per parameter, and the mean loss."""
    n = len(windows)
    grads = [torch.zeros((n, *p.shape), dtype=p.dtype) for p in params]
    total = 0.0
    for i, batch in enumerate(windows.batches(1)):  # in order, weights as given (no sampling)
        model.zero_grad(set_to_none=True)
        loss = model(_trimmed(batch))[1]
        loss.backward()
        total += float(loss.detach())
        for g, p in zip(grads, params):
            if p.grad is not None:
                g[i] = p.grad
    model.zero_grad(set_to_none=True)
    return grads, total / max(1, n)


def fit_private(model: Recommender, split: Split, cfg: "TrainConfig", rng: np.random.Generator, progress: bool = True) -> dict[str, Any]:
    """DP-SGD for ``cfg.epochs`` epochs at (``cfg.dp_epsilon``, ``cfg.dp_delta``); leaves the last weights in ``model``."""
    import opacus
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier
    from opacus.optimizers import DPOptimizer

    from recsys_core import evaluate
    from recsys_core.train import ranking_metrics

    start_w, within_w = cfg.position_weights(split.protocol)
    windows = split.training_windows(cfg.max_len, start_w, within_w).newest_per_shopper()
    n = len(windows)
    if n == 0:
        raise ValueError("no shopper has training events for DP-SGD")
    epsilon = float(cfg.dp_epsilon)  # type: ignore[arg-type]
    delta = float(cfg.dp_delta) if cfg.dp_delta is not None else default_delta(n)
    q = min(1.0, cfg.batch_size / n)
    steps_per_epoch = max(1, int(round(1.0 / q)))
    planned = int(cfg.epochs) * steps_per_epoch
    sigma = float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=q, steps=planned, accountant=ACCOUNTANT))
    params = [p for p in model.parameters() if p.requires_grad]
    noise = torch.Generator().manual_seed(int(cfg.seed))
    optimizer = DPOptimizer(
        torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        noise_multiplier=sigma,
        max_grad_norm=float(cfg.dp_max_grad_norm),
        expected_batch_size=cfg.batch_size,
        loss_reduction="mean",
        generator=noise,
    )
    accountant = RDPAccountant()
    history, started, steps = [], time.perf_counter(), 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"train {model.model_type} (DP ε={epsilon:g})", disable=not progress)
    for epoch in bar:
        t0, losses = time.perf_counter(), []
        model.train()
        for _ in range(steps_per_epoch):
            chosen = rng.random(n) < q  # Poisson sampling: each shopper independently
            grads, loss = per_sample_gradients(model, windows.subset(chosen), params)
            optimizer.zero_grad(set_to_none=True)
            for p, g in zip(params, grads):
                p.grad_sample = g
            optimizer.step()  # clip per shopper, add noise, average, Adam step
            accountant.step(noise_multiplier=sigma, sample_rate=q)
            steps += 1
            if chosen.any():
                losses.append(loss)
        bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise RuntimeError(f"DP training diverged at epoch {epoch} (non-finite weights in {', '.join(bad[:3])}); try a lower learning rate")
        train_s = time.perf_counter() - t0
        ndcg = ranking_metrics(model, split.valid, cfg.eval_batch_size).get(evaluate.HEADLINE, 0.0)
        spent = float(accountant.get_epsilon(delta))
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)) if losses else float("nan"), 5),
                        "valid_NDCG@10": round(ndcg, 5), "train_s": round(train_s, 2), "epsilon": round(spent, 4)})
        bar.set_postfix(valid_ndcg10=f"{ndcg:.4f}", epsilon=f"{spent:.2f}")
    model.eval()
    spent = float(accountant.get_epsilon(delta))
    epoch_s = [h["train_s"] for h in history]
    return {
        "best_epoch": len(history),
        "epochs_run": len(history),
        "best_valid_NDCG@10": round(history[-1]["valid_NDCG@10"], 6) if history else None,
        "seconds": round(time.perf_counter() - started, 2),
        "epoch_s_median": float(np.median(epoch_s)) if epoch_s else None,
        "history": history,
        "differential_privacy": {
            "mechanism": "DP-SGD (Opacus DPOptimizer, per-shopper clipping, Poisson sampling)",
            "epsilon": round(spent, 6),
            "delta": delta,
            "target_epsilon": epsilon,
            "accountant": ACCOUNTANT,
            "noise_multiplier": round(sigma, 6),
            "max_grad_norm": float(cfg.dp_max_grad_norm),
            "sample_rate": round(q, 8),
            "steps": steps,
            "unit": "shopper (one sample = the shopper's newest training window)",
            "shoppers": n,
            "opacus_version": opacus.__version__,
        },
    }
