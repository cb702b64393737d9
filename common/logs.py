"""The one log format of every process (web, worker, beat): ISO 8601 timestamps in UTC,
with the offset written out, whatever TIME_ZONE the admin shows dates in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class UTCFormatter(logging.Formatter):
    """Formats `record.created` as e.g. ``2025-01-31T08:15:02.137+00:00``.

    Django sets the process time zone to TIME_ZONE, which logging's own `asctime` would
    follow, without saying which zone it is in.
    """

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
