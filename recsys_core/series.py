"""Daily series as real data needs them drawn: gaps kept as gaps, stray dates named instead of joined.

Real logs have holes (a day the collector was down) and strays (a handful of events stamped months
before the bulk, from a wrong clock). A line chart over the raw per-day counts joins both
with straight lines across weeks of nothing, and stretches its axis to fit the strays. `with_gaps`
fills every missing day of a series with NaN (a plotted line breaks there); `split_outliers` finds the
bulk of the data — the longest-running block of days without a long gap that holds most events — and
names the days outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd

MAX_GAP_DAYS = 7  # a gap longer than this separates the bulk from stray dates
STRAY_SHARE = 0.05  # a block outside the bulk with at most this share of the events is a stray


@dataclass(frozen=True)
class DayRange:
    """The bulk of a daily series (first and last day) and the stray days outside it."""

    first: date | None
    last: date | None
    outliers: list[date] = field(default_factory=list)
    missing: list[date] = field(default_factory=list)  # days inside the bulk without events


def split_outliers(daily: pd.DataFrame, max_gap_days: int = MAX_GAP_DAYS, stray_share: float = STRAY_SHARE) -> DayRange:
    """The bulk and strays of a per-day frame (columns ``date`` and ``events``, any other columns summed over).

    Days are cut into blocks wherever more than ``max_gap_days`` pass without events; the block with
    most events is the bulk, and blocks holding at most ``stray_share`` of the events are strays
    (larger blocks stay in the range: they are data, not noise)."""
    if daily.empty:
        return DayRange(None, None)
    per_day = daily.groupby(pd.to_datetime(daily["date"]).dt.date)["events"].sum().sort_index()
    days = list(per_day.index)
    blocks: list[list[date]] = [[days[0]]]
    for prev, day in zip(days, days[1:]):
        if (day - prev).days > max_gap_days + 1:
            blocks.append([])
        blocks[-1].append(day)
    total = float(per_day.sum()) or 1.0
    sizes = [float(per_day.loc[b].sum()) for b in blocks]
    bulk = max(range(len(blocks)), key=lambda i: sizes[i])
    kept = [b for i, b in enumerate(blocks) if i == bulk or sizes[i] / total > stray_share]
    first, last = min(b[0] for b in kept), max(b[-1] for b in kept)
    strays = [d for i, b in enumerate(blocks) if not (i == bulk or sizes[i] / total > stray_share) for d in b]
    present = set(days)
    missing = [d.date() for d in pd.date_range(first, last, freq="D") if d.date() not in present]
    return DayRange(first, last, strays, missing)


def with_gaps(daily: pd.DataFrame, first: date, last: date, by: str = "behavior") -> pd.DataFrame:
    """Every day from ``first`` to ``last`` for every value of ``by``; days without events get NaN, so a
    line breaks there instead of joining across the gap. Rows outside the range are dropped."""
    dates = pd.date_range(first, last, freq="D")
    frame = daily.assign(date=pd.to_datetime(daily["date"]))
    frame = frame[(frame["date"] >= dates[0]) & (frame["date"] <= dates[-1])]
    groups = sorted(frame[by].unique()) if len(frame) else []
    full = pd.MultiIndex.from_product([dates, groups], names=["date", by]).to_frame(index=False)
    out = full.merge(frame, on=["date", by], how="left")
    # a behaviour with no event on a day the data has other events: a true zero, not a gap
    active = set(frame["date"])
    out.loc[out["events"].isna() & out["date"].isin(active), "events"] = 0
    return out
