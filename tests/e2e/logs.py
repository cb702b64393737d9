"""The one log format (common/logs.py), as a check on a process's captured stderr."""

import re

RECORD = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"\[\d+\] [\w.]+: "
)
# Any date-and-time, in whichever style: each must be a record's own timestamp.
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\d\d/\w{3}/\d{4}:\d\d:\d\d")


def assert_one_format(log: str) -> list[str]:
    """Every record starts with the one format and nothing else carries a timestamp (lines
    not in the format may only continue a record: a traceback). Returns the records."""
    lines = log.splitlines()
    assert lines and RECORD.match(lines[0]), log[:2000]
    for line in lines:
        if not RECORD.match(line):
            assert not TIMESTAMP.search(line), line
    return [line for line in lines if RECORD.match(line)]
