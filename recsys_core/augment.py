"""History augmentation for sparse shoppers: `train --augment crop,mask,reorder,synthetic`.

Shoppers with a handful of events give the network little to learn from, and at serving time it
sees only a few events of theirs. Each epoch, every shopper with at least two training events
contributes one extra training sequence besides its ordinary windows (docs/design.md, "Sparse
shoppers"):

- ``crop`` (CL4SRec): a random contiguous part of the newest training window, η = 0.6 of its length
  (at least two events) — short histories like a sparse shopper's;
- ``mask`` (CL4SRec): γ = 0.3 of the input events are hidden. The network has no mask token (id 0 is
  padding), so a hidden event is a padding position: it carries no input, is never attended to and
  predicts nothing, while its item is still the target of the position before it;
- ``reorder`` (CL4SRec): a random span of β = 0.3 of the window is shuffled;
- ``synthetic``: a short history (the shopper's last ≤ 5 training events, or all of a sparse shopper's)
  continued with the behaviour of a similar shopper — one who also interacted with the history's newest
  item — from just after that item: a plausible "what came next" for a history this short.

crop, mask and reorder draw one kind per shopper per epoch among those asked for; synthetic adds its own
sequence. Time fields travel with their events (the "time since the previous event" of a moved event is
its original one). Only training events are used, so validation and test stay untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from recsys_core.models.base import Batch
from recsys_core.sequences import Split

KINDS = ("crop", "mask", "reorder", "synthetic")
SEQUENCE_KINDS = ("crop", "mask", "reorder")
CROP_RATIO = 0.6
MASK_RATIO = 0.3
REORDER_RATIO = 0.3
SPARSE_EVENTS = 5  # a shopper with at most this many events is "sparse" (README, docs/evaluation.md)


def parse_kinds(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"crop,mask"`` → ("crop", "mask"); an unknown kind is a ValueError naming the allowed ones."""
    if text is None:
        return ()
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    unknown = [p for p in parts if p not in KINDS]
    if unknown:
        raise ValueError(f"--augment: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in parts)


@dataclass
class AugmentedSequence:
    """One augmented training sequence: absolute data rows in order, and which of them are hidden inputs."""

    rows: np.ndarray
    hidden: np.ndarray


class Augmenter:
    """Builds the augmented sequences of one epoch from a split's training events."""

    def __init__(self, split: Split, kinds: Sequence[str], max_len: int):
        self.split, self.kinds, self.max_len = split, tuple(kinds), int(max_len)
        d = split.data
        self.starts = d.offsets[:-1].astype(np.int64)
        self.ends = split.train_end.astype(np.int64)
        self.users = np.flatnonzero(self.ends - self.starts >= 2)
        if "synthetic" in self.kinds:
            rows = split.train_rows()
            items = d.fields["item"][rows]
            order = np.argsort(items, kind="stable")
            self._rows_by_item = rows[order]  # training rows grouped by item
            self._item_sorted = items[order]
            self._owner = np.searchsorted(d.offsets, np.arange(d.n_events), side="right") - 1

    def sequences(self, rng: np.random.Generator) -> list[AugmentedSequence]:
        """This epoch's augmented sequences (one per shopper per sequence kind drawn, plus synthetic ones)."""
        out: list[AugmentedSequence] = []
        seq_kinds = [k for k in self.kinds if k in SEQUENCE_KINDS]
        for u in self.users:
            s, e = int(self.starts[u]), int(self.ends[u])
            window = np.arange(max(s, e - self.max_len - 1), e)  # newest window: inputs and their next event
            if seq_kinds:
                kind = seq_kinds[int(rng.integers(len(seq_kinds)))]
                out.append(getattr(self, f"_{kind}")(window, rng))
            if "synthetic" in self.kinds:
                syn = self._synthetic(u, s, e, rng)
                if syn is not None:
                    out.append(syn)
        return [a for a in out if len(a.rows) >= 2]

    @staticmethod
    def _crop(window: np.ndarray, rng: np.random.Generator) -> AugmentedSequence:
        n = max(2, int(round(CROP_RATIO * len(window))))
        lo = int(rng.integers(0, len(window) - n + 1))
        rows = window[lo : lo + n]
        return AugmentedSequence(rows, np.zeros(len(rows), bool))

    @staticmethod
    def _mask(window: np.ndarray, rng: np.random.Generator) -> AugmentedSequence:
        hidden = rng.random(len(window)) < MASK_RATIO
        hidden[-1] = False  # the last row is only a target
        return AugmentedSequence(window, hidden)

    @staticmethod
    def _reorder(window: np.ndarray, rng: np.random.Generator) -> AugmentedSequence:
        n = max(2, int(round(REORDER_RATIO * len(window))))
        lo = int(rng.integers(0, len(window) - n + 1))
        rows = window.copy()
        rows[lo : lo + n] = rng.permutation(rows[lo : lo + n])
        return AugmentedSequence(rows, np.zeros(len(rows), bool))

    def _synthetic(self, u: int, s: int, e: int, rng: np.random.Generator) -> AugmentedSequence | None:
        """A short history of ``u`` continued with what a similar shopper did after the same item."""
        n = min(e - s, SPARSE_EVENTS)
        if e - s > SPARSE_EVENTS:  # a random ≤ 5-event stretch of a longer shopper
            end = int(rng.integers(s + n, e + 1))
        else:
            end = e
        short = np.arange(end - n, end)
        item = self.split.data.fields["item"][short[-1]]
        lo, hi = np.searchsorted(self._item_sorted, [item, item + 1])
        for _ in range(4):  # a few draws to find another shopper with something after the item
            if hi <= lo:
                return None
            j = int(self._rows_by_item[int(rng.integers(lo, hi))])
            v = int(self._owner[j])
            if v == u or j + 1 >= self.ends[v]:
                continue
            room = self.max_len + 1 - n
            cont = np.arange(j + 1, min(int(self.ends[v]), j + 1 + room))
            rows = np.concatenate([short, cont])
            return AugmentedSequence(rows, np.zeros(len(rows), bool))
        return None

    def batches(self, batch_size: int, rng: np.random.Generator, session_start_weight: float = 1.0,
                within_session_weight: float = 1.0) -> list[Batch]:
        """This epoch's augmented sequences as training batches (the layout of `TrainingWindows.batches`,
        a position whose weight w < 1 kept with probability w)."""
        seqs = self.sequences(rng)
        order = rng.permutation(len(seqs))
        return [self._batch([seqs[i] for i in order[lo : lo + batch_size]], rng, session_start_weight, within_session_weight)
                for lo in range(0, len(order), batch_size)]

    def _batch(self, seqs: list[AugmentedSequence], rng: np.random.Generator, start_w: float, within_w: float) -> Batch:
        d, T = self.split.data, self.max_len
        B = len(seqs)
        inp = np.zeros((B, T), np.int64)  # input row per position (valid where has_input)
        nxt = np.zeros((B, T), np.int64)
        has_input = np.zeros((B, T), bool)
        for b, a in enumerate(seqs):
            rows, hidden = a.rows[-(T + 1) :], a.hidden[-(T + 1) :]
            L = len(rows) - 1  # inputs
            inp[b, T - L :] = rows[:-1]
            nxt[b, T - L :] = rows[1:]
            has_input[b, T - L :] = ~hidden[:-1]
        has_target = has_input.copy()
        weights = np.where(d.session_start[nxt], start_w, within_w)
        keep = (weights >= 1.0) | (rng.random(weights.shape) < weights)
        has_target &= keep & (weights > 0)
        history = {k: torch.from_numpy(np.where(has_input, d.fields[k][inp], 0)) for k in d.fields}
        mask = torch.from_numpy(has_target.astype(np.int64))
        context = {k: torch.from_numpy(d.fields[k][nxt]) * mask for k in d.features.context_fields()}
        targets = torch.from_numpy(np.where(has_target, d.fields["item"][nxt], 0))
        return Batch(history, context, targets)


def iterate(windows_batches: Iterator[Batch], extra: list[Batch], rng: np.random.Generator) -> Iterator[Batch]:
    """The ordinary batches with the augmented ones interleaved at random places."""
    base = list(windows_batches)
    tags = np.concatenate([np.zeros(len(base), np.int64), np.ones(len(extra), np.int64)])
    tags = tags[rng.permutation(len(tags))]
    i = j = 0
    for tag in tags:
        if tag == 0:
            yield base[i]
            i += 1
        else:
            yield extra[j]
            j += 1
