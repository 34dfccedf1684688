"""`python -m recsys_core serve`: the HTTP API beside the studio (docs/serving.md).

`app.create_app` builds the FastAPI app; `run` serves it with uvicorn. The API key comes from
``$SCENEPUSH_API_KEY`` or a key file, never from the command line (it would show in `ps`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

API_KEY_ENV = "SCENEPUSH_API_KEY"


def read_api_key(key_file: str | os.PathLike | None = None) -> str:
    """The API key: the first line of ``key_file`` when given, else ``$SCENEPUSH_API_KEY``."""
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise FileNotFoundError(f"--api-key-file {path} does not exist")
        lines = path.read_text(encoding="utf-8").splitlines()
        key = lines[0].strip() if lines else ""
        if not key:
            raise ValueError(f"--api-key-file {path} is empty: put the key on its first line")
        return key
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise ValueError(f"no API key: set ${API_KEY_ENV} or pass --api-key-file FILE (clients send it as the X-API-Key header)")
    return key


def run(db: str | os.PathLike | None, host: str, port: int, model_dir: str | None, api_key: str,
        threads: int | None = None) -> dict[str, Any]:
    """Serve until interrupted (Ctrl-C / SIGTERM); landed events are merged before it exits."""
    import uvicorn

    from recsys_core.serve.app import DEFAULT_THREADS, ServeConfig, create_app
    from recsys_core.store import resolve_db_path

    threads = DEFAULT_THREADS if threads is None else int(threads)
    if not 1 <= threads <= 64:
        raise ValueError(f"--threads must be between 1 and 64, got {threads}")
    app = create_app(ServeConfig(db=resolve_db_path(db), api_key=api_key, model_dir=Path(model_dir) if model_dir else None,
                                 threads=threads))
    uvicorn.run(app, host=host, port=int(port), log_level="info", access_log=False)
    return {"status": "stopped", "host": host, "port": int(port)}
