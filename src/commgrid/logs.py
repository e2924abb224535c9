"""Log output for `commgrid serve`: one line per record, with its `extra` fields as key=value pairs.

Every step of the data path logs a stable `action` (`event_published`, `delivery_succeeded`, …), so with
`--log-level info` the log reads like the path an event took.
"""

from __future__ import annotations

import logging

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


class KeyValueFormatter(logging.Formatter):
    """`time level logger message key=value …`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        return f"{line} {extras}" if extras else line


#: Database drivers' loggers: their debug output is every SQL statement, shown only at the `sql` level.
SQL_LOGGERS = ("aiosqlite", "asyncpg")


def configure(level: str) -> None:
    """Send commgrid's logs to stderr at `level` (sql, debug, info, warning, error); `sql` is debug plus every
    statement the store sends, which plain debug leaves out."""
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    sql = level.lower() == "sql"
    root.setLevel("DEBUG" if sql else level.upper())
    for name in SQL_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if sql else max(logging.INFO, root.level))
