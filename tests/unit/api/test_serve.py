"""How the API is served: uvicorn with its log configuration and processes, metrics summed
through a directory emptied at start."""

from __future__ import annotations

from pathlib import Path

from api import metrics, serve
from api.settings import ApiSettings
from headwater.cli.run import app_processes


def test_uvicorn_gets_the_log_configuration_and_the_processes() -> None:
    options = serve.uvicorn_options(ApiSettings(port=8123, processes=2, log_level="warning"))
    assert options["port"] == 8123 and options["workers"] == 2 and options["factory"]
    handlers = options["log_config"]["handlers"]
    assert all(
        h["filters"] == ["request_id", "exception_summary", "mask"] for h in handlers.values()
    )
    assert options["log_config"]["loggers"]["uvicorn.access"]["level"] == "WARNING"


def test_the_metrics_directory_is_emptied_of_earlier_counts(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "api-metrics"
    serve.fresh_metrics_dir(directory)
    (directory / "counter_123.db").write_bytes(b"x")
    (directory / "keep.txt").write_text("not ours")
    serve.fresh_metrics_dir(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]
    assert serve.MULTIPROCESS_ENV == metrics.MULTIPROCESS_ENV


def test_headwater_run_serves_the_api_through_api_serve() -> None:
    (api,) = [p for p in app_processes("127.0.0.1", 8000) if p.name == "api"]
    assert api.args[1:] == ["-m", "api.serve", "--host", "127.0.0.1", "--port", "8000"]
