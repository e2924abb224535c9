"""SQL shared by both backends for delivery attempts and the console's event searches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commgrid.store import rows
from commgrid.store.base import AttemptRecord, EventQuery

ATTEMPT_COLS = "topic, subscription, event_seq, attempt, at, outcome, status, duration, error, response"
RESPONSE_EXCERPT = 512  # characters of a response body kept per attempt


def attempt_values(r: AttemptRecord) -> tuple:
    return (r.topic, r.subscription, r.event_seq, r.attempt, r.at, r.outcome, r.status, r.duration, r.error,
            r.response[:RESPONSE_EXCERPT])


def attempt_from_row(r: rows.Row) -> AttemptRecord:
    """From `ATTEMPT_COLS`."""
    return AttemptRecord(**{name: r[name] for name in _ATTEMPT_FIELDS})


_ATTEMPT_FIELDS = ATTEMPT_COLS.split(", ")


def _id_equals(placeholder: str) -> str:
    return f"e.id = {placeholder}"


def search_sql(query: EventQuery, limit: int, mark: str,
               id_clause: Callable[[str], str] = _id_equals) -> tuple[str, tuple]:
    """A newest-first select of the events matching `query`; `mark` is "?" (SQLite) or "$" (PostgreSQL);
    `id_clause` words the match on an event id (SQLite's needs its `ID_BLOCKS` before the select)."""
    clauses: list[str] = []
    args: list[Any] = []

    def placeholder(value: Any) -> str:
        args.append(value)
        return "?" if mark == "?" else f"${len(args)}"

    if query.topic:
        clauses.append(f"e.topic = {placeholder(query.topic)}")
    if query.type:
        clauses.append(f"e.type = {placeholder(query.type)}")
    if query.id:
        clauses.append(id_clause(placeholder(query.id)))
    if query.subject:
        clauses.append(f"substr(e.subject, 1, {len(query.subject)}) = {placeholder(query.subject)}")
    if query.before_seq is not None:
        clauses.append(f"e.seq < {placeholder(query.before_seq)}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {rows.EVENT_COLS} FROM events e{where} ORDER BY e.seq DESC LIMIT {placeholder(limit)}"
    return sql, tuple(args)
