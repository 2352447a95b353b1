"""The API process's logging: every record carries the id of the request it was logged for
(`request_id`, "-" outside a request), personal data masked, and an error raised while
serving a request as one line (its type and where it was raised), never a traceback that
could hold the request's data. `log_config` is the uvicorn log configuration that installs
them on every handler, so the server's own lines (the access line, "Exception in ASGI
application") get them as the application's do.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from uvicorn.logging import AccessFormatter as UvicornAccessFormatter

from api import masking, request_id

NO_REQUEST = "-"
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
ACCESS_FORMAT = (
    '%(asctime)s %(levelname)s access [%(request_id)s] %(client_addr)s "%(request_line)s" '
    "%(status_code)s"
)
# The attributes every LogRecord has; any other was passed with `extra=` and is masked too.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
}


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id` to the id of the request being served (see
    `api.request_id.current`), or "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.current.get() or NO_REQUEST
        return True


class MaskingFilter(logging.Filter):
    """Masks personal data (`api.masking`) in the message, its arguments, the fields passed
    with `extra=` and a traceback's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = masking.mask_text(record.msg)
        if record.args:
            record.args = masking.mask_value(record.args)
        for key in vars(record).keys() - _STANDARD:
            setattr(record, key, masking.mask_value(getattr(record, key)))
        if record.exc_info and not record.exc_text:
            record.exc_text = masking.mask_text(
                "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            )
        return True


def exception_summary(exc: BaseException) -> str:
    """`TypeName at path/to/module.py:line`: what was raised and where, without its message
    (which can quote the request's data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {_short(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/work/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


class ExceptionSummaryFilter(logging.Filter):
    """A record logged while serving a request with an exception attached becomes one line:
    the message, then the exception's type and where it was raised; its traceback is
    dropped. Records outside any request (the dashboards' feed reconnecting) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or request_id.current.get() is None:
            return True
        exc = record.exc_info[1]
        if exc is not None:
            summary = exception_summary(exc)
            # The message is still to be %-formatted with its arguments.
            summary = summary.replace("%", "%%") if record.args else summary
            record.msg = f"{str(record.msg).rstrip()} ({summary})"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _utc(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)


class Formatter(logging.Formatter):
    """UTC times in ISO 8601, milliseconds included."""

    converter = staticmethod(_utc)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


class AccessFormatter(UvicornAccessFormatter):
    """uvicorn's access line (client, request line, status), with times as `Formatter`'s."""

    converter = staticmethod(_utc)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


def log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's `log_config`: the application's and the server's records, to stderr, with
    the request id, masked; the access lines to stdout in the same form."""
    filters = ["request_id", "exception_summary", "mask"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": f"{__name__}.RequestIdFilter"},
            "exception_summary": {"()": f"{__name__}.ExceptionSummaryFilter"},
            "mask": {"()": f"{__name__}.MaskingFilter"},
        },
        "formatters": {
            "default": {"()": f"{__name__}.Formatter", "fmt": FORMAT},
            "access": {
                "()": f"{__name__}.AccessFormatter",
                "fmt": ACCESS_FORMAT,
                "use_colors": False,
            },
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": filters,
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": filters,
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            # One line per Elasticsearch request at INFO: the access line says enough.
            "elastic_transport": {"level": "WARNING"},
        },
        "root": {"handlers": ["default"], "level": level},
    }
