"""Every UI word exists in English and Simplified Chinese, and every key the pages use exists."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from recsys_core import i18n
from recsys_core.context import WELL_KNOWN
from recsys_core.i18n import LANGUAGES, TRANSLATIONS, format_int, format_pct, label, markdown_text, t, t_markdown
from recsys_core.store.analytics import BEHAVIORS

ROOT = Path(__file__).resolve().parents[1]
UI_FILES = [ROOT / "app.py", *sorted((ROOT / "views").glob("*.py"))]
CJK = re.compile(r"[\u4e00-\u9fff]")
# The sample world's scene vocabulary (docs/TEAM_NOTES.md).
VOCAB = {
    "device": ["mobile", "pc", "tablet"],
    "channel": ["home_feed", "search", "push", "live_stream", "cart"],
    "location": ["home", "office", "commute", "city"],
    "behavior": list(BEHAVIORS),
    "weekday": [str(d) for d in range(7)],
}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def words(text: str) -> str:
    """The literal text around the placeholders."""
    return "".join(literal for literal, _, _, _ in string.Formatter().parse(text))


@pytest.mark.parametrize("key", sorted(TRANSLATIONS))
def test_every_key_has_both_languages_with_the_same_placeholders(key):
    entry = TRANSLATIONS[key]
    assert set(entry) == set(LANGUAGES), f"{key}: {sorted(entry)}"
    assert all(entry[lang].strip() for lang in LANGUAGES), key
    assert placeholders(entry["en"]) == placeholders(entry["zh"]), key
    if re.search(r"[A-Za-z]{2,}", words(entry["en"])):  # pure templates like "{a} ({b})" need no words
        # Chinese characters, or at least a different arrangement ("{items} in {category}" -> "{category}{items}").
        assert CJK.search(entry["zh"]) or entry["zh"] != entry["en"], f"{key}: untranslated: {entry['zh']!r}"


def _literal_keys(path: Path) -> set[str]:
    """First arguments of tr("...") / t("...") calls that are plain strings."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in ("tr", "t")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            keys.add(node.args[0].value)
    return keys


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_every_literal_key_used_by_the_ui_exists(path):
    missing = _literal_keys(path) - set(TRANSLATIONS)
    assert not missing, f"{path.name} uses keys without translations: {sorted(missing)}"


def test_keys_built_at_run_time_exist():
    """Keys the pages build with f-strings: vocabularies, funnel stages, scene fields, column headers."""
    for field, values in VOCAB.items():
        for value in values:
            assert f"{field}.{value}" in TRANSLATIONS
    for stage in ("pv", "fav_cart", "buy"):
        assert f"stage.{stage}" in TRANSLATIONS
    for field in WELL_KNOWN.values():  # scene fields carry their own labels (the schema), in both languages
        assert field.label("en") and CJK.search(field.label("zh")), field.name
    for name in ("hour", "weekday", "weekend", "holiday", "promo", "gap"):  # time fields the pages name
        assert f"why.context.{name}" in TRANSLATIONS
    for column in (*BEHAVIORS, "events", "fav_cart_rate", "buy_rate", "title", "category", "price", "local_time"):
        assert f"col.{column}" in TRANSLATIONS


def test_t_fills_placeholders_and_fails_loudly():
    assert t("col.days", "zh", days="63") == "共 63 天"
    assert t("nav.behaviour", "en") == "Behaviour"
    with pytest.raises(KeyError, match="no.such.key"):
        t("no.such.key", "en")
    with pytest.raises(ValueError, match="choose from"):
        t("nav.behaviour", "fr")


def test_labels_of_vocabulary_values():
    assert label("device", "pc", "zh") == "电脑"
    assert label("channel", "live_stream", "en") == "Live stream"
    assert label("device", "smartwatch", "zh") == "smartwatch"  # outside the vocabulary: as given
    assert label("location", "unknown", "zh") == "未知"
    assert label("weekday", 6, "zh") == "周日"


def test_markdown_safe_values():
    """Data strings in Markdown-rendering elements show as their text: no bold, links, HTML or directives."""
    import re as _re

    injected = "**bold** [x](https://example.com) <b>html</b> $x$ :red[y] `z`"
    escaped = markdown_text(injected)
    assert not _re.search(r"(?<!\\)[*\[\]()<>$`:]", escaped)  # every special character is escaped
    assert _re.sub(r"\\(.)", r"\1", escaped) == injected  # and unescaping gives the text back
    assert markdown_text("two\nlines") == "two lines"
    # inside a code span of the template a value stays literal (only backticks are replaced)
    text = t_markdown("scenario.unknown_shopper", "en", user="**u1** <i>", examples="a_b")
    assert "`**u1** <i>`" in text and "a\\_b" in text
    assert "`ʼ`" in t_markdown("scenario.unknown_shopper", "en", user="`", examples="")


def test_number_formatting():
    assert format_int(1234567) == "1,234,567"
    assert format_int(0) == "0"
    assert format_int(float("nan")) == "–"
    assert format_pct(0.1234) == "12.3%"
    assert format_pct(0.02, digits=2) == "2.00%"
    assert format_pct(float("nan")) == "–"


def test_i18n_never_imports_streamlit():
    tree = ast.parse(Path(i18n.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] == "streamlit"}
