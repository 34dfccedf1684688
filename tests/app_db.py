"""A small store for the app tests, built with SQL in a second (the full sample world takes longer).

20 shoppers, 30 items in 5 categories (English and Chinese names), about 3,000 events from
2024-10-28 to 2024-11-17 local time (Asia/Shanghai), 11.11 included, nothing on 2024-11-05.
No shopper is called "nobody". Scene fields: the sample world's device, channel and location
(declared in `scene_fields`, as an import would).
"""

from __future__ import annotations

from pathlib import Path

from recsys_core.context import scene_field
from recsys_core.store import connect, set_meta
from recsys_core.store.scene import ensure_scene_fields

CATEGORIES = [("coffee", "咖啡"), ("games", "游戏"), ("phones", "手机"), ("snacks", "零食"), ("books", "图书")]
EMPTY_DAY = "2024-11-05"
SCENE_FIELDS = ("device", "channel", "location")


def build_small_store(path: Path, scene: bool = True) -> Path:
    """The small store; ``scene=False`` leaves out the scene fields (like the Taobao sample: time only)."""
    con = connect(path)
    if scene:
        ensure_scene_fields(con, [scene_field(f) for f in SCENE_FIELDS])
    con.executemany(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (f"i{n}", f"Item {n}", f"商品{n}", CATEGORIES[n % 5][0], CATEGORIES[n % 5][1], "Brand", 10.0 + n * 7)
            for n in range(30)
        ],
    )
    scene_values = """,
               ['mobile', 'pc', 'tablet'][(1 + hash(n * 5) % 3)::BIGINT],
               ['home_feed', 'search', 'push', 'live_stream', 'cart'][(1 + hash(n * 11) % 5)::BIGINT],
               ['home', 'office', 'commute', 'city'][(1 + hash(n * 13) % 4)::BIGINT]"""
    con.execute(
        """
        INSERT INTO events (user_id, item_id, behavior, ts, seq{scene_columns})
        SELECT 'u' || (CASE WHEN n < 150 THEN 0 ELSE 1 + hash(n) % 19 END),
               'i' || (hash(n * 7) % 30),
               CASE WHEN hash(n * 3) % 100 < 80 THEN 'pv' WHEN hash(n * 3) % 100 < 88 THEN 'cart'
                    WHEN hash(n * 3) % 100 < 94 THEN 'fav' ELSE 'buy' END,
               ts, n{scene_values}
        FROM (
            SELECT n, TIMESTAMP '2024-10-27 16:00:00' + to_seconds((hash(n * 17) % (21 * 86400))::BIGINT) AS ts
            FROM range(3300) t(n)
        )
        WHERE (timezone('Asia/Shanghai', ts AT TIME ZONE 'UTC'))::DATE <> DATE '2024-11-05'
        """.replace("{scene_columns}", ", device, channel, location" if scene else "").replace("{scene_values}", scene_values if scene else "")
    )
    set_meta(con, "timezone", "Asia/Shanghai")
    con.close()
    return path


def open_app_page(
    monkeypatch,
    db: Path,
    page: str,
    params: dict[str, str] | None = None,
    model_dirs: list[Path] | None = None,
    timeout: float = 180,
):
    """The app as a browser opens it: the frame first (URL parameters kept), then `page`.

    ``model_dirs`` replaces the registered model folders when given (``[]`` means "no model").
    """
    from streamlit.testing.v1 import AppTest

    import views._common as common

    if model_dirs is not None:
        monkeypatch.setattr(common, "model_dirs", lambda: list(model_dirs))
    monkeypatch.setenv("RECSYS_DB", str(db))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=timeout)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at
