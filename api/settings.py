"""Settings of the search HTTP service (env prefix HW_API_)."""

from __future__ import annotations

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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
