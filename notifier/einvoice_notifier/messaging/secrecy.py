"""Keep channel secrets out of third-party log lines.

urllib3 logs every request line at DEBUG, query string included, and the WeCom robot key and the
application's access token and corp secret travel in the query. A filter on that logger masks them,
so turning on DEBUG logging to chase a problem never writes a secret to disk.
"""

from __future__ import annotations

import logging
import re

_SECRET_QUERY = re.compile(r"((?:key|access_token|corpsecret)=)[^&\s\"']+")
_LOGGERS = ("urllib3.connectionpool", "requests")


def mask_secrets(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1***", text)


class SecretQueryFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = mask_secrets(record.getMessage())
            record.args = None
        else:
            record.msg = mask_secrets(str(record.msg))
        return True


def install_secret_filter() -> None:
    """Idempotent; called when a channel that carries a secret in its URLs is built."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretQueryFilter) for f in logger.filters):
            logger.addFilter(SecretQueryFilter())
