"""Source order for same-second events, the MovieLens format, and scene fields imported from any column."""

from __future__ import annotations

import pytest

from recsys_core import importers, store
from recsys_core.sequences import SequenceData
from recsys_core.store.scene import scene_fields

# user 1 rates four movies in one second (file order 30, 10, 40, 20: neither id order nor its reverse),
# user 2 two in one second at the end, user 3 in distinct seconds.
U_DATA = (
    "1\t30\t4\t881250949\n"
    "2\t7\t3\t881251000\n"
    "1\t10\t5\t881250949\n"
    "3\t5\t4\t881250100\n"
    "1\t40\t2\t881250949\n"
    "2\t9\t4\t881251100\n"
    "1\t20\t3\t881250949\n"
    "3\t6\t1\t881250200\n"
    "2\t8\t5\t881251100\n"
    "3\t4\t4\t881250300\n"
    "1\t50\t4\t881250000\n"
    "2\t11\t4\t881251100\n"
)


def stable_sort_targets(text: str, sep: str = "\t") -> dict[str, tuple[str, str]]:
    """(validation item, test item) per user from a stable sort by (timestamp, line) — RecBole's order."""
    rows = [line.split(sep) for line in text.strip().splitlines()]
    by_user: dict[str, list[tuple[float, int, str]]] = {}
    for line_no, (user, item, _rating, ts) in enumerate(rows):
        by_user.setdefault(user, []).append((float(ts), line_no, item))
    return {u: (sorted(e)[-2][2], sorted(e)[-1][2]) for u, e in by_user.items() if len(e) >= 3}


def split_targets(db) -> dict[str, tuple[str, str]]:
    con = store.connect(db, read_only=True)
    try:
        data = SequenceData.from_store(con)
    finally:
        con.close()
    split = data.split("next_event")
    decode = lambda row: data.features.items.decode(int(data.fields["item"][row]))  # noqa: E731
    return {data.user_ids[u]: (decode(v), decode(t)) for u, v, t in zip(split.test.users, split.valid.targets, split.test.targets)}


def test_same_second_ratings_split_like_a_stable_sort_by_time_and_line(tmp_path):
    f = tmp_path / "u.data"
    f.write_text(U_DATA)
    r = importers.import_file(f, fmt="movielens", db=tmp_path / "ml.duckdb", tz="UTC")
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (12, 12, 0)
    expected = stable_sort_targets(U_DATA)
    assert expected["1"] == ("40", "20")  # file order within the second, not item-id order (which would give 30, 40)
    assert split_targets(tmp_path / "ml.duckdb") == expected


def test_reimport_gives_the_same_order_and_sub_second_offsets_change_nothing(tmp_path):
    plain, offset = tmp_path / "u.data", tmp_path / "u_offsets.data"
    plain.write_text(U_DATA)
    # the same ratings with sub-second offsets in file order: an explicit total order
    lines = U_DATA.strip().splitlines()
    offset.write_text("".join(
        f"{u}\t{i}\t{r}\t{int(ts) + n / 1000:.3f}\n" for n, (u, i, r, ts) in enumerate(line.split("\t") for line in lines)
    ))
    a, b, twice = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "twice.duckdb"
    importers.import_file(plain, fmt="movielens", db=a, tz="UTC")
    importers.import_file(offset, fmt="csv", db=b, tz="UTC", sep="\t", columns="user,item,rating,ts")
    importers.import_file(plain, fmt="movielens", db=twice, tz="UTC")
    assert importers.import_file(plain, fmt="movielens", db=twice, tz="UTC")["already_imported"]

    def encoded(db):
        con = store.connect(db, read_only=True)
        try:
            d = SequenceData.from_store(con)
        finally:
            con.close()
        return d.user_ids, [d.features.items.decode(int(i)) for i in d.fields["item"]], d.session_start.tolist()

    assert encoded(a) == encoded(b) == encoded(twice)
    assert split_targets(a) == split_targets(b)


@pytest.mark.parametrize("name,content,sep", [
    ("ratings.dat", U_DATA.replace("\t", "::"), "::"),
    ("ratings.csv", "userId,movieId,rating,timestamp\n" + U_DATA.replace("\t", ","), ","),
])
def test_movielens_dat_and_csv_variants(tmp_path, name, content, sep):
    f = tmp_path / name
    f.write_text(content)
    r = importers.import_file(f, fmt="movielens", db=tmp_path / "ml.duckdb", tz="UTC")
    assert r["rows_imported"] == 12
    assert split_targets(tmp_path / "ml.duckdb") == stable_sort_targets(U_DATA)


def test_min_rating_sets_low_ratings_aside_with_a_reason(tmp_path):
    f = tmp_path / "u.data"
    f.write_text(U_DATA)
    db = tmp_path / "ml.duckdb"
    r = importers.import_file(f, fmt="movielens", db=db, tz="UTC", min_rating=4)
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (12, 8, 4)
    con = store.connect(db, read_only=True)
    reasons = [x[0] for x in con.execute("SELECT reason FROM quarantine ORDER BY row_number").fetchall()]
    con.close()
    assert reasons[0] == "u.data line 2: field 'rating' (column 3): '3' is below --min-rating 4 (set aside, not imported)"
    with pytest.raises(ValueError, match="--min-rating applies to --format movielens"):
        importers.import_file(f, fmt="csv", db=db, min_rating=4)


def test_movielens_item_files_give_titles_and_genres(tmp_path):
    ratings = tmp_path / "u.data"
    ratings.write_text(U_DATA)
    u_item = tmp_path / "u.item"  # Latin-1, as the real u.item
    u_item.write_bytes(
        "30|Caf\xe9 au lait (1995)|01-Jan-1995||http://x|0|0|0|0|0|1|0|0|1|0|0|0|0|0|0|0|0|0|0\n"
        "10|Toy Story (1995)|01-Jan-1995||http://y|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "broken line without fields\n".encode("latin-1")
    )
    db = tmp_path / "ml.duckdb"
    r = importers.import_file(ratings, fmt="movielens", db=db, items_path=u_item, tz="UTC")
    assert (r["items_file"]["rows_imported"], r["items_file"]["rows_quarantined"]) == (2, 1)
    con = store.connect(db, read_only=True)
    items = dict((i, (t, c)) for i, t, c in con.execute("SELECT item_id, title, category FROM items WHERE title IS NOT NULL").fetchall())
    reason = con.execute("SELECT reason FROM quarantine").fetchone()[0]
    con.close()
    assert items == {"30": ("Café au lait (1995)", "Comedy"), "10": ("Toy Story (1995)", "Animation")}
    assert reason.startswith("u.item line 3: expected 3 fields")

    movies_csv = tmp_path / "movies.csv"
    movies_csv.write_text('movieId,title,genres\n30,"Heat, Part II (1995)",Action|Crime\n10,Toy Story (1995),(no genres listed)\n')
    db2 = tmp_path / "ml2.duckdb"
    importers.import_file(ratings, fmt="movielens", db=db2, items_path=movies_csv, tz="UTC")
    con = store.connect(db2, read_only=True)
    got = dict((i, (t, c)) for i, t, c in con.execute("SELECT item_id, title, category FROM items WHERE title IS NOT NULL").fetchall())
    con.close()
    assert got == {"30": ("Heat, Part II (1995)", "Action"), "10": ("Toy Story (1995)", None)}


def test_any_column_becomes_a_scene_field_and_bad_values_are_quarantined(tmp_path):
    f = tmp_path / "log.csv"
    long = "x" * 80
    f.write_text(
        "user,item,ts,Weather,store_id,app\n"
        "u1,i1,2025-01-01T08:00,Rain,S-0012,v1\n"
        "u1,i2,2025-01-01T09:00,sunny,S-0099,v2\n"
        f"u2,i1,2025-01-01T09:00,{long},S-0012,v1\n"
        "u2,i2,2025-01-01T10:00,sun\x07ny,S-0012,v1\n"
        "u2,i3,2025-01-01T11:00,,S-0012,v1\n"
    )
    db = tmp_path / "s.duckdb"
    r = importers.import_file(f, fmt="csv", db=db, scene=["weather", "shop=store_id:3"])
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (5, 3, 2)
    con = store.connect(db, read_only=True)
    try:
        assert [(s.name, s.known_at_decision) for s in scene_fields(con)] == [("weather", True), ("shop", True)]
        rows = con.execute('SELECT user_id, item_id, weather, shop FROM events ORDER BY seq').fetchall()
        reasons = [x[0] for x in con.execute("SELECT reason FROM quarantine ORDER BY row_number").fetchall()]
        cols = [c[0] for c in con.execute("DESCRIBE events").fetchall()]
    finally:
        con.close()
    assert rows == [("u1", "i1", "rain", "s-0"), ("u1", "i2", "sunny", "s-0"), ("u2", "i3", "unknown", "s-0")]
    assert "app" not in cols  # columns not named are ignored
    assert "line 4: field 'Weather' (column 4):" in reasons[0] and "longer than 64 characters" in reasons[0]
    assert reasons[1] == "log.csv line 5: field 'Weather' (column 4) has control characters"


def test_scene_option_errors_name_the_problem(tmp_path, shared_data):
    f = tmp_path / "log.csv"
    f.write_text("user,item,ts,weather\nu1,i1,2025-01-01T08:00,rain\n")
    db = tmp_path / "e.duckdb"
    with pytest.raises(ValueError, match=r"--scene rainfall=rainfall: no column 'rainfall' in the header \(user, item, ts, weather\)"):
        importers.import_file(f, fmt="csv", db=db, scene=["rainfall"])
    with pytest.raises(ValueError, match="reserved"):
        importers.import_file(f, fmt="csv", db=db, scene=["hour=weather"])
    with pytest.raises(ValueError, match="prefix length"):
        importers.import_file(f, fmt="csv", db=db, scene=["weather:x"])
    with pytest.raises(ValueError, match="a taobao file has no column 'weather'"):
        importers.import_file(shared_data / "taobao_userbehavior_sample.csv", fmt="taobao", db=db, scene=["weather"])


def test_sample_world_keeps_a_defined_source_order(tmp_path):
    from recsys_core import synth

    db = tmp_path / "sample.duckdb"
    synth.build_sample_database(db)
    con = store.connect(db, read_only=True)
    try:
        n, distinct, lo, hi = con.execute("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM events").fetchone()
        # within a shopper, seq follows time (ties: the generator's order, view before fav/cart/buy)
        bad = con.execute(
            "SELECT count(*) FROM (SELECT ts < lag(ts) OVER (PARTITION BY user_id ORDER BY seq) AS back FROM events) WHERE back"
        ).fetchone()[0]
    finally:
        con.close()
    assert n == distinct == hi - lo + 1 and bad == 0
