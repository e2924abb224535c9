"""Event subscription filters: validated and compiled once, then matched against many events.

Semantics follow the event-filtering article, https://learn.microsoft.com/azure/event-grid/event-filtering.
A filter passes an event when every part passes, checked in this order (also the order `explain` uses):

1. `includedEventTypes`: any of them, case-insensitive; absent, null, `[]` or any `"All"` entry = all;
2. `subjectBeginsWith` / `subjectEndsWith`: literal, case-insensitive unless `isSubjectCaseSensitive`;
3. each of `advancedFilters`: AND across filters, OR across one filter's values.

The operators themselves are in `grid/filter_operators.py`; `grid/filter_index.py` indexes compiled filters.

Choices made where the reference is silent (each also noted at the code that implements it):

- A key whose value is JSON `null` is treated like a missing key by every operator, as `IsNullOrUndefined`
  does.
- A value of the wrong type (a string for a Number operator, `"5"` or `true` for NumberIn, `1` for
  BoolEquals, an object for anything) never satisfies the positive predicate: positive operators do not
  match, negated ones do. This is the reference's "elements whose type differs are ignored" rule applied
  to a single value.
- Without `enableAdvancedFilteringOnArrays` an array is such a foreign value: positive operators do not
  match, negated ones match; `IsNotNull` / `IsNullOrUndefined` only look at presence. With the flag, an
  array holding an object or a nested array fails every operator ("arrays of objects cannot be filtered").
- In CloudEvents, top-level context attributes compared by a String operator use their canonical string
  form (`5` → `"5"`, `true` → `"true"`), so the docs' own example (StringBeginsWith `["5", "1"]` on the
  integer extension `comexampleothervalue`) matches. Values under `data` are never converted.
- Case-insensitive subject comparisons fold case with `str.casefold` (so `ß` matches `SS`): it works
  character by character, unlike `str.lower`, which lets `SubscriptionIndex` keep case-sensitive and
  case-insensitive prefixes in one tree.
- `values` must be a non-empty list and `value` a single scalar, as each operator takes; numbers must be
  JSON numbers (not numeric strings or booleans) and BoolEquals needs `true` or `false`.
- Limits count one value per `value`, per entry of `values` and per `[low, high]` pair.
- Field names inside the filter (`operatorType`, `Key`, `Values` ...) are read case-insensitively, as ARM
  does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from commgrid.errors import InvalidInput, Problems
from commgrid.events.envelope import CLOUDEVENTS, EVENTGRID
from commgrid.grid.filter_operators import OPERATORS, PREDICATES, Operator, is_bool, is_number, is_string
from commgrid.jsonfields import fields

__all__ = [
    "MAX_ADVANCED_FILTERS",
    "MAX_FILTER_VALUES",
    "MAX_STRING_VALUE_LENGTH",
    "SCHEMAS",
    "CompiledFilter",
    "FilterError",
    "compile_filter",
]

MAX_ADVANCED_FILTERS = 25  # event-filtering Limits
MAX_FILTER_VALUES = 25  # in total across all advanced filters of one subscription
MAX_STRING_VALUE_LENGTH = 512

# The attribute holding the event type, per schema (event-schema, cloud-event-schema).
_TYPE_KEYS = {EVENTGRID: "eventType", CLOUDEVENTS: "type"}
SCHEMAS = tuple(_TYPE_KEYS)

# Event Grid schema attribute names, by lower-cased filter key (event-filtering Keys: `ID`, `Topic`, `EventType` ...).
_EG_ATTRIBUTES = {
    name.lower(): name
    for name in ("id", "topic", "subject", "eventType", "eventTime", "dataVersion", "metadataVersion", "data")
}


def type_key(schema: str) -> str:
    if schema not in _TYPE_KEYS:
        raise ValueError(f"unsupported event schema {schema!r}; expected one of {', '.join(SCHEMAS)}")
    return _TYPE_KEYS[schema]


class FilterError(InvalidInput):
    """The event subscription filter is invalid; see details."""


class _Missing:
    """The value of a key the event does not have."""

    def __repr__(self) -> str:
        return "undefined"


_MISSING: Any = _Missing()
Getter = Callable[[dict], Any]
Test = Callable[[dict], bool]


# ------------------------------------------------------------------------------------------------------------
# Keys


def _child(node: Any, name: str, folded: str) -> Any:
    """`node[name]`, else the first property whose name matches case-insensitively (event-filtering Keys)."""
    if not isinstance(node, dict):
        return _MISSING
    value = node.get(name, _MISSING)
    if value is _MISSING:
        for prop, candidate in node.items():
            if isinstance(prop, str) and prop.lower() == folded:
                return candidate
    return value


@functools.lru_cache(maxsize=4096)
def _make_getter(segments: tuple[str, ...]) -> Getter:
    """The getter for a key path, one per path: filters of a topic's many subscriptions mostly test the same
    few keys, and a shared getter stays in the CPU caches where one per filter would not."""
    path = tuple((name, name.lower()) for name in segments)

    def get(event: dict) -> Any:
        node: Any = event
        for name, folded in path:
            node = _child(node, name, folded)
            if node is _MISSING:
                break
        return node

    return get


@functools.lru_cache(maxsize=4096)
def _ce_attribute_as_string(get: Getter) -> Getter:
    """CloudEvents context attributes have a canonical string form; String operators compare it [D4]."""

    def coerced(event: dict) -> Any:
        value = get(event)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if is_number(value) else value

    return coerced


def _parse_key(key: str, schema: str) -> tuple[str, ...]:
    """Split `data.a.b` into segments, the first spelt as the schema does (`Data` → `data`, `ID` → `id`)."""
    segments = key.split(".")
    first = segments[0].lower()
    if first == "data" or schema == CLOUDEVENTS:
        segments[0] = first  # CloudEvents attribute names are lower-case by spec (cloud-event-schema)
    else:
        segments[0] = _EG_ATTRIBUTES.get(first, segments[0])
    return tuple(segments)


# ------------------------------------------------------------------------------------------------------------
# Values shown in messages


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return "'" + (value if len(value) <= 80 else value[:77] + "...") + "'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        shown = ", ".join(_fmt(item) for item in value[:10])
        return f"[{shown}{', ...' if len(value) > 10 else ''}]"
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


# ------------------------------------------------------------------------------------------------------------
# Advanced filters


@dataclass(frozen=True, slots=True)
class _Clause:
    """One compiled advanced filter."""

    index: int
    op: Operator
    key: str
    get: Getter
    values: tuple  # normalized: strings lower-cased, ranges as (low, high)
    shown: Any  # the filter's `value` or `values` as given, for messages
    arrays: bool
    test: Test

    def explain(self, event: dict) -> str | None:
        """Why this clause rejects `event`, or None if it passes."""
        if self.test(event):
            return None
        return f"advancedFilters[{self.index}] {self.op.name} on {self.key}: {self._reason(self.get(event))}"

    def _reason(self, x: Any) -> str:
        op = self.op
        if x is _MISSING or x is None:
            return f"{self.key} is {'missing' if x is _MISSING else 'null'}"
        if op.accepts is None:  # IsNullOrUndefined on a present value
            return f"value {_fmt(x)} is not null"
        if isinstance(x, list):
            return self._array_reason(x)
        if not op.accepts(x):
            return f"value {_fmt(x)} is a {_type_name(x)}, not a {_type_name_of(op)}"
        if op.negated:
            return self._hit(x, "value")
        return f"value {_fmt(x)} {op.failed_phrase} {_fmt(self.shown)}"

    def _array_reason(self, x: list) -> str:
        if not self.arrays:
            return f"value {_fmt(x)} is an array and enableAdvancedFilteringOnArrays is not set"
        if any(isinstance(item, dict | list) for item in x):
            return f"value {_fmt(x)} is an array of objects or arrays, which cannot be filtered"
        if self.op.negated:
            return next(self._hit(item, "element") for item in x if self._satisfies(item))
        return f"no {_type_name_of(self.op)} element of {_fmt(x)} satisfies {self.op.name} {_fmt(self.shown)}"

    def _satisfies(self, x: Any) -> bool:
        return bool(self.op.accepts and self.op.accepts(x)) and any(self._relations(x))

    def _relations(self, x: Any) -> Iterable[bool]:
        folded = x.lower() if isinstance(x, str) else x
        return (self.op.relation(folded, v) for v in self.values)

    def _hit(self, x: Any, what: str) -> str:
        shown = self.shown if isinstance(self.shown, list) else [self.shown]
        witness = next(s for s, hit in zip(shown, self._relations(x), strict=True) if hit)
        return f"{what} {_fmt(x)} {self.op.phrase} {_fmt(witness)}"


def _type_name_of(op: Operator) -> str:
    names: dict[Callable[[object], bool] | None, str] = {is_number: "number", is_string: "string", is_bool: "boolean"}
    return names.get(op.accepts, "value")


def _make_test(op: Operator, get: Getter, values: tuple, arrays: bool) -> Test:
    """Choose the event check for one advanced filter, so matching never looks at operator names."""
    if op.accepts is None:  # IsNullOrUndefined / IsNotNull look at presence only (event-filtering)
        absent_matches = op.name == "IsNullOrUndefined"
        return lambda event: ((x := get(event)) is _MISSING or x is None) is absent_matches
    accepts = op.accepts
    positive = PREDICATES[op.positive](values)
    negated, on_missing = op.negated, op.missing_matches

    def test(event: dict) -> bool:
        x = get(event)
        if x is _MISSING or x is None:
            return on_missing
        if accepts(x):
            return positive(x) is not negated
        if isinstance(x, list):
            return _array_passes(x, accepts, positive, negated, arrays)
        return negated  # a value of another type never satisfies the positive predicate (module docstring)

    return test


def _array_passes(
    x: list, accepts: Callable[[object], bool], positive: Callable[[Any], bool], negated: bool, arrays: bool
) -> bool:
    """event-filtering Arrays: a satisfying (element, value) pair passes positive ops, fails negated ones."""
    if not arrays:
        return negated
    if any(isinstance(item, dict | list) for item in x):
        return False  # "arrays of objects cannot be filtered", whatever the operator
    hit = any(positive(item) for item in x if accepts(item))
    return hit is not negated


# ------------------------------------------------------------------------------------------------------------
# Validation


def _count_values(entry: dict[str, Any]) -> int:
    values = entry.get("values")
    if isinstance(values, list):
        return len(values)
    return 1 if "value" in entry or values is not None else 0


def _check_string(value: Any, where: str, problems: Problems) -> str | None:
    if not isinstance(value, str):
        problems.add(f"{where} must be a string, got {_type_name(value)} {_fmt(value)}.", "InvalidAdvancedFilter")
        return None
    if len(value) > MAX_STRING_VALUE_LENGTH:
        problems.add(
            f"{where} is {len(value)} characters long; string values are "
            f"limited to {MAX_STRING_VALUE_LENGTH} characters.",
            "AdvancedFilterLimitExceeded",
        )
        return None
    return value.lower()


def _storable_json(value: object) -> bool:
    """Whether `value` can be stored as JSON exactly (a filter is kept as written, ignored fields included)."""
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def _storable(x: object) -> bool:
    """A number commgrid stores exactly: a finite float or an integer in the 64-bit range JSON tools keep."""
    if isinstance(x, float):
        return math.isfinite(x)
    return -(2**63) <= x <= 2**64 - 1  # type: ignore[operator]


def _check_number(value: Any, where: str, problems: Problems) -> float | None:
    if not is_number(value):
        problems.add(f"{where} must be a number, got {_type_name(value)} {_fmt(value)}.", "InvalidAdvancedFilter")
        return None
    if not _storable(value):
        problems.add(
            f"{where} must be a finite number within the 64-bit integer range, got {str(value)[:40]}.",
            "InvalidAdvancedFilter",
        )
        return None
    return value


def _check_range(value: Any, where: str, problems: Problems) -> tuple[float, float] | None:
    if (not isinstance(value, list) or len(value) != 2 or not all(map(is_number, value))
            or not all(map(_storable, value)) or value[0] > value[1]):
        problems.add(
            f"{where} must be a [low, high] pair of numbers with low <= high, got {_fmt(value)}.",
            "InvalidAdvancedFilter",
        )
        return None
    return (value[0], value[1])


def _single_value(op: Operator, entry: dict[str, Any], where: str, problems: Problems) -> tuple | None:
    if "value" not in entry:
        hint = f"; {op.name} takes a single 'value', not 'values'" if "values" in entry else ""
        problems.add(f"{where}: 'value' is required{hint}.", "InvalidAdvancedFilter")
        return None
    value = entry["value"]
    if op.accepts is is_bool:
        if not isinstance(value, bool):
            problems.add(
                f"{where}.value must be true or false, got {_type_name(value)} {_fmt(value)}.",
                "InvalidAdvancedFilter",
            )
            return None
        return (value,)
    number = _check_number(value, f"{where}.value", problems)
    return None if number is None else (number,)


def _many_values(op: Operator, entry: dict[str, Any], where: str, problems: Problems) -> tuple | None:
    values = entry.get("values")
    if not isinstance(values, list) or not values:
        hint = f"; {op.name} takes a list of 'values', not a single 'value'" if "value" in entry else ""
        problem = "is required" if values is None else "must be a non-empty list"
        problems.add(f"{where}: 'values' {problem}{hint}.", "InvalidAdvancedFilter")
        return None
    check = {"ranges": _check_range, "values": _check_string if op.accepts is is_string else _check_number}
    normalized = [check[op.arity](value, f"{where}.values[{i}]", problems) for i, value in enumerate(values)]
    return None if any(v is None for v in normalized) else tuple(normalized)


def _compile_clause(index: int, raw: Any, schema: str, arrays: bool, problems: Problems) -> _Clause | None:
    where = f"advancedFilters[{index}]"
    if not isinstance(raw, dict):
        problems.add(f"{where} must be an object, got {_type_name(raw)}.", "InvalidAdvancedFilter")
        return None
    entry = fields(raw)
    name, key = entry.get("operatortype"), entry.get("key")
    op = OPERATORS.get(name.lower()) if isinstance(name, str) else None
    if name is None:
        problems.add(f"{where}: 'operatorType' is required.", "InvalidAdvancedFilter")
    elif op is None:
        problems.add(
            f"{where}: operatorType {_fmt(name)} is not supported; use one of "
            f"{', '.join(sorted(o.name for o in OPERATORS.values()))}.",
            "InvalidAdvancedFilter",
        )
    if not isinstance(key, str) or not key or "" in key.split("."):
        problems.add(
            f"{where}: 'key' must be a property path such as 'data.key1' or 'subject', got {_fmt(key)}.",
            "InvalidAdvancedFilter",
        )
        key = None
    if op is None:
        return None
    where = f"{where} ({op.name})"
    values: tuple | None = ()
    if op.arity == "value":
        values = _single_value(op, entry, where, problems)
    elif op.arity != "none":
        values = _many_values(op, entry, where, problems)
    if values is None or key is None:
        return None
    get = _make_getter(_parse_key(key, schema))
    if op.accepts is is_string and schema == CLOUDEVENTS and "." not in key and key.lower() != "data":
        get = _ce_attribute_as_string(get)
    shown = entry.get("value") if op.arity == "value" else entry.get("values")
    return _Clause(index, op, key, get, values, shown, arrays, _make_test(op, get, values, arrays))


def _compile_clauses(raw: Any, schema: str, arrays: bool, problems: Problems) -> tuple[_Clause, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(f"advancedFilters must be a list, got {_type_name(raw)}.", "InvalidFilter")
        return ()
    if len(raw) > MAX_ADVANCED_FILTERS:
        problems.add(
            f"{len(raw)} advanced filters given; at most {MAX_ADVANCED_FILTERS} are allowed per event subscription.",
            "AdvancedFilterLimitExceeded",
        )
    total = sum(_count_values(fields(entry)) for entry in raw if isinstance(entry, dict))
    if total > MAX_FILTER_VALUES:
        problems.add(
            f"{total} advanced filter values given across all filters; at "
            f"most {MAX_FILTER_VALUES} are allowed per event subscription.",
            "AdvancedFilterLimitExceeded",
        )
    clauses = [_compile_clause(i, entry, schema, arrays, problems) for i, entry in enumerate(raw)]
    return tuple(c for c in clauses if c is not None)


def _event_types(raw: Any, problems: Problems) -> tuple[str, ...] | None:
    """The listed types, or None for all: absent, null, `[]` or any `"All"` entry ([D4] "specify All")."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        problems.add(f"includedEventTypes must be a list of strings, got {_type_name(raw)}.", "InvalidFilter")
        return None
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            problems.add(
                f"includedEventTypes[{i}] must be a string, got {_type_name(item)} {_fmt(item)}.",
                "InvalidFilter",
            )
    types = tuple(item for item in raw if isinstance(item, str))
    return None if not types or any(t.lower() == "all" for t in types) else types


def _optional(fields: dict[str, Any], name: str, kind: type, default: Any, problems: Problems) -> Any:
    value = fields.get(name.lower())
    if value is None:
        return default
    if not isinstance(value, kind):
        problems.add(f"{name} must be a {_type_name(default)}, got {_type_name(value)}.", "InvalidFilter")
        return default
    return value


# ------------------------------------------------------------------------------------------------------------
# Compiled filter


@dataclass(frozen=True, slots=True, eq=False)
class CompiledFilter:
    """A validated subscription filter, ready to match events of one schema.

    `SubscriptionIndex` keys on `included_event_types` (lower-cased, None for all) and `index_prefix`
    (`subjectBeginsWith` case-folded, whatever `is_subject_case_sensitive` says).
    """

    schema: str
    included_event_types: frozenset[str] | None
    event_types_given: tuple[str, ...] | None
    subject_begins_with: str
    subject_ends_with: str
    is_subject_case_sensitive: bool
    enable_advanced_filtering_on_arrays: bool
    index_prefix: str
    subject_prefix: str  # as compared: case-folded unless case-sensitive
    subject_suffix: str
    clauses: tuple[_Clause, ...]

    def matches(self, event: dict) -> bool:
        """Whether `event` (a dict in this filter's schema) passes the filter."""
        types = self.included_event_types
        if types is not None:
            event_type = event.get(_TYPE_KEYS[self.schema])
            if not isinstance(event_type, str) or event_type.lower() not in types:
                return False
        subject = subject_of(event)
        folded = subject.casefold()
        return folded.startswith(self.index_prefix) and self.passes_rest(event, subject, folded)

    def passes_rest(self, event: dict, subject: str, folded: str) -> bool:
        """The checks left once event type and `index_prefix` are known to pass; `folded` = subject case-folded."""
        if self.is_subject_case_sensitive:
            if not subject.startswith(self.subject_prefix):
                return False
        else:
            subject = folded
        if self.subject_suffix and not subject.endswith(self.subject_suffix):
            return False
        for clause in self.clauses:  # noqa: SIM110 - a loop is cheaper than all(generator) on this hot path
            if not clause.test(event):
                return False
        return True

    def explain(self, event: dict) -> str | None:
        """None if `event` matches, else a sentence naming the first part of the filter that rejects it."""
        reason = self._explain_type(event) or self._explain_subject(event)
        if reason:
            return reason
        return next((r for c in self.clauses if (r := c.explain(event)) is not None), None)

    def _explain_type(self, event: dict) -> str | None:
        if self.included_event_types is None:
            return None
        type_key, types = _TYPE_KEYS[self.schema], _fmt(self.event_types_given)
        event_type = event.get(type_key)
        if not isinstance(event_type, str):
            return f"includedEventTypes {types} does not match: the event has no {type_key}"
        if event_type.lower() in self.included_event_types:
            return None
        return f"includedEventTypes {types} does not include event type {_fmt(event_type)}"

    def _explain_subject(self, event: dict) -> str | None:
        subject = subject_of(event)
        compared = subject if self.is_subject_case_sensitive else subject.casefold()
        shown = _fmt(subject) if isinstance(event.get("subject"), str) else "(none)"
        case = " (case-sensitive)" if self.is_subject_case_sensitive else ""
        if not compared.startswith(self.subject_prefix):
            return f"subjectBeginsWith {_fmt(self.subject_begins_with)} does not match subject {shown}{case}"
        if not compared.endswith(self.subject_suffix):
            return f"subjectEndsWith {_fmt(self.subject_ends_with)} does not match subject {shown}{case}"
        return None


def subject_of(event: dict) -> str:
    subject = event.get("subject")
    return subject if isinstance(subject, str) else ""  # CloudEvents subject is optional (cloud-event-schema)


def compile_filter(filter: dict | None, schema: str) -> CompiledFilter:
    """Validate an ARM `filter` object (event-filtering) and compile it for events in `schema`.

    Parameters
    ----------
    filter
        The subscription's `filter`, camelCase as in ARM JSON; None means no filter.
    schema
        The schema of the events it will see: "EventGridSchema" or "CloudEventSchemaV1_0".

    Raises
    ------
    FilterError
        Listing every problem found (unknown operators, missing or mistyped values, limits).
    """
    type_key(schema)
    problems = Problems()
    if filter is not None and not isinstance(filter, dict):
        problems.add(f"filter must be an object, got {_type_name(filter)}.", "InvalidFilter")
    elif not _storable_json(filter):
        problems.add(
            "filter holds a number outside the 64-bit integer range, or JSON nested too deeply to store.",
            "InvalidFilter",
        )
    given = fields(filter)
    types = _event_types(given.get("includedeventtypes"), problems)
    begins = _optional(given, "subjectBeginsWith", str, "", problems)
    ends = _optional(given, "subjectEndsWith", str, "", problems)
    case_sensitive = _optional(given, "isSubjectCaseSensitive", bool, False, problems)
    arrays = _optional(given, "enableAdvancedFilteringOnArrays", bool, False, problems)
    clauses = _compile_clauses(given.get("advancedfilters"), schema, arrays, problems)
    if problems.details:
        messages = " ".join(detail.message for detail in problems.details)
        raise FilterError.from_problems(problems.details, f"Invalid event subscription filter: {messages}")
    return CompiledFilter(
        schema=schema,
        included_event_types=None if types is None else frozenset(t.lower() for t in types),
        event_types_given=types,
        subject_begins_with=begins,
        subject_ends_with=ends,
        is_subject_case_sensitive=case_sensitive,
        enable_advanced_filtering_on_arrays=arrays,
        index_prefix=begins.casefold(),
        subject_prefix=begins if case_sensitive else begins.casefold(),
        subject_suffix=ends if case_sensitive else ends.casefold(),
        clauses=clauses,
    )
