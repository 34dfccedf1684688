"""Shopper privacy: keyed pseudonyms at import, and erasure of one shopper (`forget`).

Pseudonyms. With ``import --pseudonymise`` every shopper id becomes
``ps_`` + the first 20 hex digits (80 bits) of HMAC-SHA256(key, id). The key
comes from ``--key-file`` or ``$SCENEPUSH_PSEUDONYM_KEY`` and is never written
anywhere; the database keeps only a key check value (an HMAC of a fixed label),
so a later import with another key — or without one — is refused instead of
mixing two id spaces. The same key maps the same id to the same pseudonym in
every import. 80 bits keep collisions negligible: for n shoppers the chance of
any collision is about n² / 2⁸¹ (4 × 10⁻¹³ at a million shoppers, 4 × 10⁻⁷ at a
billion); an import also refuses a file in which two ids collide.

Erasure. `forget` deletes a shopper's events, pushes (with their stored
reasons), quarantined rows and profile in one transaction, leaves an audit row
without identifying data, and rewrites the database file so deleted rows do not
linger in free blocks. Model folders trained on data that contained the shopper
are flagged from the audit rows (`trained_on_erased_data`): a model's weights
keep what they learned until it is retrained.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Any, Sequence

KEY_ENV = "SCENEPUSH_PSEUDONYM_KEY"
PSEUDONYM_PREFIX = "ps_"
PSEUDONYM_HEX_DIGITS = 20  # 80 bits: see the module docstring for the collision bound
SCHEME = "hmac-sha256/80"
MIN_KEY_BYTES = 16
_KEY_CHECK_LABEL = b"scenepush pseudonym key check v1"
_PSEUDONYM_RE = re.compile(rf"{PSEUDONYM_PREFIX}[0-9a-f]{{{PSEUDONYM_HEX_DIGITS}}}")


class PseudonymKeyError(ValueError):
    """The pseudonymisation key is missing, too short, or not the database's."""


class UnknownShopperError(ValueError):
    """`forget` was given a shopper the database does not hold."""


def load_key(key_file: str | os.PathLike | None = None) -> bytes:
    """The pseudonymisation key: the bytes of ``key_file`` (trailing newline ignored), else ``$SCENEPUSH_PSEUDONYM_KEY``.

    Raises `PseudonymKeyError` (one line) when neither gives a key of at least 16 bytes.
    """
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise PseudonymKeyError(f"key file {path} does not exist")
        key = path.read_bytes().rstrip(b"\r\n")
        where = f"key file {path}"
    else:
        text = os.environ.get(KEY_ENV, "")
        if not text:
            raise PseudonymKeyError(
                f"no pseudonymisation key: set ${KEY_ENV} or pass --key-file F (e.g. `openssl rand -hex 32 > F`)"
            )
        key = text.encode("utf-8")
        where = f"${KEY_ENV}"
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"{where} holds {len(key)} bytes; a pseudonymisation key needs at least {MIN_KEY_BYTES} random bytes")
    return key


def key_if_given(key_file: str | os.PathLike | None = None) -> bytes | None:
    """`load_key` when a key file or ``$SCENEPUSH_PSEUDONYM_KEY`` is given, else None (`forget` by pseudonym needs none)."""
    return load_key(key_file) if key_file is not None or os.environ.get(KEY_ENV) else None


def pseudonym(raw_id: str, key: bytes) -> str:
    """The pseudonym of a raw shopper id under ``key`` (what a pseudonymised database stores instead of the id).

    Ids are text as imported (surrounding blanks removed), so ``"007"`` and ``"7"`` stay different shoppers.
    """
    digest = hmac.new(key, str(raw_id).strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_DIGITS]


def pseudonyms(raw_ids: Sequence[str], key: bytes) -> list[str]:
    """`pseudonym` of many ids (an import maps each distinct id once)."""
    return [pseudonym(r, key) for r in raw_ids]


def is_pseudonym(text: str) -> bool:
    """Whether ``text`` has the form of a pseudonym (``ps_`` + 20 lower-case hex digits)."""
    return bool(_PSEUDONYM_RE.fullmatch(str(text)))


def key_check_value(key: bytes) -> str:
    """What the database stores to recognise its key later. An HMAC of a fixed label: it reveals nothing about
    the key beyond what any pseudonym already does (both only let someone holding a candidate key test it)."""
    return hmac.new(key, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()


def check_import_key(state: dict[str, str] | None, key: bytes | None, has_raw_data: bool, db: str) -> None:
    """Refuse an import that would mix raw ids and pseudonyms, or pseudonyms of two keys (one clear line).

    ``state`` is the database's pseudonym record (`store.privacy.pseudonym_state`), ``has_raw_data`` whether
    an unpseudonymised database already holds shoppers.
    """
    if state is None:
        if key is not None and has_raw_data:
            raise PseudonymKeyError(
                f"database {db} already holds raw shopper ids; import with --pseudonymise into a new database"
            )
        return
    if key is None:
        raise PseudonymKeyError(
            f"database {db} holds pseudonymised shopper ids: import with --pseudonymise and its key "
            f"(${KEY_ENV} or --key-file), so raw ids are not mixed in"
        )
    if not hmac.compare_digest(state["key_check"], key_check_value(key)):
        raise PseudonymKeyError(f"database {db} was pseudonymised with another key; use the same key for every import")


# --- erasure ------------------------------------------------------------------------------


def forget(
    db: str | os.PathLike | None,
    user: str,
    key: bytes | None = None,
    models_root: str | os.PathLike = "models",
) -> dict[str, Any]:
    """Erase one shopper from the database (and the stored evaluation cases beside it that name them);
    returns the audit record and the model folders to retrain.

    ``user`` is the id as the database holds it (a pseudonym, or the raw id of an unpseudonymised
    database), or — with ``key`` — the raw id of a pseudonymised database. Raises `UnknownShopperError`
    when no row holds the shopper, `PseudonymKeyError` when a raw id needs a key that is missing or wrong.
    """
    from recsys_core import recommend, registry
    from recsys_core.store import connect, resolve_db_path
    from recsys_core.store import privacy as store_privacy

    path = resolve_db_path(db)
    if not path.exists():
        raise FileNotFoundError(f"database {path} does not exist")
    user = str(user).strip()
    if not user:
        raise UnknownShopperError("--user is empty")
    con = connect(path)
    try:
        target = _stored_id(con, user, key, str(path))
        record = store_privacy.erase_shopper(con, target)
        if record is None:
            shown = repr(user) if target == user else f"{user!r} (pseudonym {target})"
            raise UnknownShopperError(f"database {path} holds no shopper {shown}: no events, pushes, quarantined rows or profile")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    store_privacy.rewrite_database(path)
    from recsys_core.evaluate import EvaluationStore

    evaluation_files = EvaluationStore.beside(path).drop_shopper(target)
    # A pseudonym is 23 distinctive bytes, so finding it is meaningful; a raw id such as "17" is not.
    scanned = is_pseudonym(target)
    if scanned and store_privacy.file_contains(path, target):
        raise RuntimeError(f"database {path} still contains the shopper's pseudonym after the rewrite; do not distribute it")
    erasures = [record]
    to_retrain = [
        str(d) for d in recommend.list_model_dirs(models_root)
        if trained_on_erased_data(_metadata_or_none(registry, d), erasures)
    ]
    return {
        "erasure_id": record["erasure_id"],
        "erased_at": record["erased_at"].isoformat(timespec="seconds"),
        "deleted": {k: record[k] for k in ("events", "pushes", "quarantine_rows", "users_rows")},
        "database_rewritten": True,
        "stored_evaluation_files_deleted": evaluation_files,
        "file_scan": "pseudonym not found in the file" if scanned else "not run (raw ids are not distinctive bytes)",
        "models_to_retrain": to_retrain,
    }


def _stored_id(con, user: str, key: bytes | None, db: str) -> str:
    """The id the database holds for ``user``: ``user`` itself, or its pseudonym under ``key``."""
    from recsys_core.store import privacy as store_privacy

    state = store_privacy.pseudonym_state(con)
    if state is None:
        return user
    if is_pseudonym(user) and store_privacy.shopper_rows(con, user):
        return user
    if key is None:
        raise PseudonymKeyError(
            f"{user!r} is not a pseudonym held by database {db}; to forget a shopper by raw id give the key "
            f"(${KEY_ENV} or --key-file)"
        )
    check_import_key(state, key, False, db)
    return pseudonym(user, key)


def _metadata_or_none(registry, folder: Path) -> dict[str, Any] | None:
    try:
        return registry.read_metadata(folder)
    except (registry.ModelFolderError, OSError):
        return None


def trained_on_erased_data(metadata: dict[str, Any] | None, erasures: Sequence[dict[str, Any]]) -> bool:
    """Whether a model folder (its metadata) was trained on data that held a shopper erased since.

    Two signs, either one suffices (docs/privacy.md):
    - its data fingerprint equals the database's just before an erasure (trained on exactly that data);
    - it was trained after the erased shopper's data arrived (the earliest import run that brought it)
      and before the erasure. A folder trained on another database in that window is flagged too:
      erring towards a retrain is the safe side.
    """
    if not metadata or not erasures:
        return False
    data_hash = (metadata.get("data_fingerprint") or {}).get("events_hash")
    trained_at = _utc(metadata.get("trained_at"))
    for e in erasures:
        if data_hash and e.get("data_hash") == data_hash:
            return True
        if trained_at is None:
            continue
        since = e.get("data_since")
        if (since is None or since <= trained_at) and trained_at < e["erased_at"]:
            return True
    return False


def _utc(text: str | None) -> dt.datetime | None:
    """A stored ISO time as naive UTC (how the database keeps times), None when absent or unreadable."""
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t
