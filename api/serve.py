"""`python -m api.serve`: the API under uvicorn as `headwater run` and `headwater bench search`
start it: its log configuration (`api.logs`: request ids, masking), uvloop and httptools, and
`HW_API_PROCESSES` worker processes, whose metrics then go through a multiprocess directory
(`api.metrics`) emptied at each start.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from api.logs import log_config
from api.settings import ApiSettings

# api.metrics.MULTIPROCESS_ENV, named here because prometheus_client reads it when imported,
# which must come after it is set.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
APP = "api.app:create_app"


def metrics_dir(data_dir: Path) -> Path:
    return data_dir / "run" / "api-metrics"


def fresh_metrics_dir(directory: Path) -> None:
    """`directory`, made if missing, without the files of an earlier run's processes (their
    counts would be added to this run's)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.db"):
        old.unlink(missing_ok=True)


def uvicorn_options(api: ApiSettings) -> dict[str, Any]:
    return {
        "factory": True,
        "host": api.host,
        "port": api.port,
        "workers": api.processes,
        "log_config": log_config(api.log_level.upper()),
        "access_log": api.access_log,
        "loop": "uvloop",
        "http": "httptools",
        # Behind no proxy by default: client addresses are the peers'.
        "proxy_headers": False,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.serve", description=__doc__)
    parser.add_argument("--host", help="HW_API_HOST")
    parser.add_argument("--port", type=int, help="HW_API_PORT")
    parser.add_argument("--processes", type=int, help="HW_API_PROCESSES")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    api = ApiSettings(**overrides)
    if api.processes > 1 and not os.environ.get(MULTIPROCESS_ENV):
        from headwater.settings import StackSettings

        os.environ[MULTIPROCESS_ENV] = str(metrics_dir(StackSettings().data_dir))
    if os.environ.get(MULTIPROCESS_ENV):
        fresh_metrics_dir(Path(os.environ[MULTIPROCESS_ENV]))

    import uvicorn

    uvicorn.run(APP, **uvicorn_options(api))


if __name__ == "__main__":
    main()
