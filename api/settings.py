"""Settings of the search HTTP service (env prefix HW_API_)."""

from __future__ import annotations

from pydantic import Field

from headwater.settings import _Component, _config


class ApiSettings(_Component):
    model_config = _config("HW_API_")

    host: str = "127.0.0.1"
    port: int = 8000
    # Hits per page: the default and the largest a client may ask for.
    default_size: int = 10
    max_size: int = 100
    # `/health/ready` asks each worker's web endpoint; this many workers are expected.
    workers: int = 1
    # uvicorn worker processes serving the API (`api.serve`); over 1, metrics are summed
    # across them through a multiprocess directory.
    processes: int = Field(default=1, ge=1)
    log_level: str = "info"
    # One line per request (uvicorn's access log, with the request id, masked).
    access_log: bool = True
    # `/metrics` looks at the pipeline's lag at most this often (a look costs a few queries).
    metrics_lag_max_age_s: float = Field(default=10.0, gt=0.0)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
