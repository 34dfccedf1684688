"""A scene field the code has never heard of, from import to explanation: a `weather` column.

A small log where rainy sessions go to rain gear and sunny ones to summer gear is imported with
`--scene weather`, a context transformer is trained on it, and the field then works everywhere:
recommendations move in the planted direction, explanations attribute to it and have a Shapley group
for it, the Scenario page has a control for it, Push review filters by it. No source file outside the
tests names the field.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.app_db import open_app_page

ROOT = Path(__file__).resolve().parents[1]
RAIN_GEAR = ("umbrella", "raincoat", "boots")
SUN_GEAR = ("sunglasses", "sunscreen", "fan")
OTHER = ("snack", "book", "cable", "mug")


def weather_log(path: Path) -> Path:
    """60 shoppers × 10 sessions a day apart; each session is rainy or sunny (fair coin) and views 3 items:
    from the matching gear with probability 0.8, else from the other items."""
    rng = np.random.default_rng(0)
    lines = ["user,item,ts,behavior,category,weather"]
    start = dt.datetime(2025, 6, 1, 9, 0)
    for u in range(60):
        for s in range(10):
            rain = rng.random() < 0.5
            t = start + dt.timedelta(days=s, hours=int(rng.integers(0, 10)), minutes=int(rng.integers(0, 50)))
            for k in range(3):
                if rng.random() < 0.8:
                    cat = (RAIN_GEAR if rain else SUN_GEAR)[int(rng.integers(0, 3))]
                else:
                    cat = OTHER[int(rng.integers(0, 4))]
                item = f"{cat}-{int(rng.integers(0, 3))}"
                lines.append(f"s{u},{item},{(t + dt.timedelta(minutes=2 * k)).isoformat()},pv,{cat},{'rain' if rain else 'sunny'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "recsys_core", *args, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("weather")
    db = root / "w.duckdb"
    imported = cli("import", str(weather_log(root / "log.csv")), "--format", "csv", "--scene", "weather", "--db", str(db))
    assert imported["rows_imported"] == 1800 and imported["rows_quarantined"] == 0
    from recsys_core.store import connect
    from recsys_core.train import TrainConfig, train

    con = connect(db, read_only=True)
    try:
        cfg = TrainConfig(d_model=32, max_len=20, n_layers=1, n_heads=2, epochs=15, patience=15, batch_size=16, seed=1)
        train(con, "context_transformer", "next_session", root / "models" / "weather_ct", cfg, progress=False)
    finally:
        con.close()
    # Pushes go out before any test opens the studio in this process (DuckDB: one writer, or readers only).
    for user, weather in (("s3", "rain"), ("s4", "sunny")):
        out = cli("push", "--users", user, "--at", "2025-06-12T10:00", "--scene", f"weather={weather}", "-k", "2",
                  "--model-dir", str(root / "models" / "weather_ct"), "--db", str(db))
        assert out["pushed"] == 2 and out["scene"] == {"weather": weather}
    return db, root / "models" / "weather_ct"


def gear_in_top(result: dict, gear: tuple[str, ...]) -> int:
    return sum(item["category"] in gear for item in result["items"])


def test_recommendations_follow_the_weather(world):
    db, model = world
    rain_more = 0
    for user in ("s1", "s7", "s23", "s42"):
        common = ["recommend", "--user", user, "--at", "2025-06-12T10:00", "-k", "5", "--model-dir", str(model), "--db", str(db)]
        rain, sun = cli(*common, "--scene", "weather=rain"), cli(*common, "--scene", "weather=sunny")
        assert "weather" in rain["context_fields"] and rain["scene"] == {"weather": "rain"}
        rain_more += gear_in_top(rain, RAIN_GEAR) > gear_in_top(sun, RAIN_GEAR) and gear_in_top(sun, SUN_GEAR) > gear_in_top(rain, SUN_GEAR)
    assert rain_more >= 3, rain_more


def test_explanations_attribute_to_the_new_field(world):
    db, model = world
    top = cli("recommend", "--user", "s3", "--at", "2025-06-12T10:00", "--scene", "weather=rain", "-k", "1",
              "--model-dir", str(model), "--db", str(db))["items"][0]["item_id"]
    ex = cli("explain", "--user", "s3", "--item", top, "--at", "2025-06-12T10:00", "--scene", "weather=rain",
             "--model-dir", str(model), "--db", str(db))
    assert "context.weather" in [a["feature"] for a in ex["attributions"]]
    assert "scene.weather" in ex["shapley"]["values"]
    assert isinstance(ex["reason"], str) and ex["reason"]


def test_the_studio_has_a_weather_control_and_push_review_filters_by_it(world, monkeypatch):
    db, model = world
    params = {"user": "s3", "at": "2025-06-12T10:00", "weather": "rain", "k": "5"}
    at = open_app_page(monkeypatch, db, "views/scenario.py", params, model_dirs=[model])
    assert not at.exception
    weather = at.selectbox(key="scene_weather")
    assert set(weather.options) >= {"rain", "sunny"} or set(getattr(weather, "options", [])) >= {"Rain", "Sunny"}
    before = at.dataframe[0].value["title_shown"].tolist()  # the main list comes first
    weather.set_value("sunny").run()
    assert not at.exception
    assert at.dataframe[0].value["title_shown"].tolist() != before


def test_no_source_file_outside_the_tests_names_the_field():
    found = subprocess.run(["grep", "-rlw", "weather", "recsys_core", "views", "app.py"], capture_output=True, text=True, cwd=ROOT)
    assert found.stdout.split() == []


def test_push_review_filters_pushes_by_the_new_field(world, monkeypatch):
    from recsys_core.i18n import t

    db, model = world  # the fixture pushed s3 in the rain and s4 in the sun
    at = open_app_page(monkeypatch, db, "views/push_review.py", {}, model_dirs=[model])
    assert not at.exception
    user_col = t("review.col.user_id", "en")
    assert set(at.dataframe[0].value[user_col]) >= {"s3", "s4"}
    at.multiselect(key="review_scene_weather").set_value(["rain"]).run()
    assert not at.exception and set(at.dataframe[0].value[user_col]) == {"s3"}
