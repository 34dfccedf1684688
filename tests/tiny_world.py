"""A tiny behaviour world for the model tests (a second to build, no generator needed).

24 shoppers, 24 items in 3 categories (coffee c0-c7, games g0-g7, electronics e0-e7), three weeks of
sessions in Asia/Shanghai. Planted: sessions starting 07-09 h are coffee, 21-23 h games, and sessions
on pc lean to electronics; each shopper also has one favourite item they return to.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.context import scene_field
from recsys_core.store import connect, set_meta
from recsys_core.store.scene import ensure_scene_fields

CATEGORIES = {"coffee": "c", "games": "g", "electronics": "e"}
N_USERS = 24


def tiny_items() -> pd.DataFrame:
    rows = []
    for cat, prefix in CATEGORIES.items():
        for n in range(8):
            rows.append((f"{prefix}{n}", f"{cat} {n}", f"{cat}{n}号", cat, cat, "brand", 10.0 * (n + 1) * (1 + 10 * (cat == "electronics"))))
    return pd.DataFrame(rows, columns=["item_id", "title", "title_zh", "category", "category_zh", "brand", "price"])


def tiny_events(seed: int = 0, n_users: int = N_USERS) -> pd.DataFrame:
    """Events with naive UTC ``ts`` (local Asia/Shanghai = UTC+8)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        favourite = f"{'cge'[u % 3]}{u % 8}"
        day = dt.datetime(2025, 11, 1)
        for _ in range(int(rng.integers(6, 14))):
            day += dt.timedelta(days=int(rng.integers(1, 3)))
            hour = int(rng.choice([8, 8, 15, 22, 22]))
            device = str(rng.choice(["mobile", "pc"]))
            if hour == 8:
                cat = "c"
            elif hour == 22:
                cat = "g"
            else:
                cat = "e" if device == "pc" else str(rng.choice(list("cg")))
            t = day.replace(hour=hour, minute=int(rng.integers(0, 50))) - dt.timedelta(hours=8)  # local → UTC
            for k in range(int(rng.integers(1, 5))):
                item = favourite if (k == 0 and rng.random() < 0.3) else f"{cat}{int(rng.integers(0, 8))}"
                rows.append((f"u{u}", item, str(rng.choice(["pv", "pv", "cart"])), t, device, "home_feed", "home"))
                t += dt.timedelta(minutes=int(rng.integers(1, 8)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "behavior", "ts", "device", "channel", "location"])


def build_tiny_store(path: Path, seed: int = 0) -> Path:
    con = connect(path)
    items, events = tiny_items(), tiny_events(seed)
    con.register("tiny_items", items)
    con.register("tiny_events", events)
    con.execute("INSERT INTO items SELECT * FROM tiny_items")
    ensure_scene_fields(con, [scene_field(f) for f in ("device", "channel", "location")])
    con.execute(
        "INSERT INTO events (user_id, item_id, behavior, ts, seq, source_run, device, channel, location) "
        "SELECT user_id, item_id, behavior, ts, row_number() OVER (ORDER BY user_id, ts), 'tiny', device, channel, location FROM tiny_events"
    )
    con.execute("INSERT INTO users VALUES ('profile_only', 'Shanghai', 'new')")
    set_meta(con, "timezone", "Asia/Shanghai")
    con.close()
    return path
