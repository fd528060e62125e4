"""JSON log lines (one object per line) for every service, with the correlation id when known."""
import json
import logging

from eventlet.corolocal import local

_STANDARD = set(vars(logging.makeLogRecord({})))
# Local to the greenthread (each Nameko worker runs in its own), whether or not eventlet has
# patched `threading` by the time this module is imported.
_current = local()


def bind_correlation_id(correlation_id):
    """Every line the current worker logs from now on carries this correlation id."""
    _current.correlation_id = correlation_id


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        correlation_id = getattr(_current, "correlation_id", None)
        if correlation_id:
            line["correlation_id"] = correlation_id
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
