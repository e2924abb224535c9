"""The advanced-filter operators: each `operatorType`, the values it takes and the predicate it applies.

Names, value shapes and the missing-key rule follow the event-filtering article,
https://learn.microsoft.com/azure/event-grid/event-filtering#advanced-filtering ; `grid/filters.py` compiles
filters from these, `grid/namespaces/models.py` checks namespace filter names against them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

# Every operatorType, in the order Azure's REST specification lists them (and error messages name them).
OPERATOR_NAMES = (
    "NumberIn", "NumberNotIn", "NumberLessThan", "NumberGreaterThan", "NumberLessThanOrEquals",
    "NumberGreaterThanOrEquals", "BoolEquals", "StringIn", "StringNotIn", "StringBeginsWith", "StringEndsWith",
    "StringContains", "NumberInRange", "NumberNotInRange", "StringNotBeginsWith", "StringNotEndsWith",
    "StringNotContains", "IsNullOrUndefined", "IsNotNull",
)


def is_number(x: object) -> bool:
    # bools are ints in Python, but never numbers in a filter
    return isinstance(x, int | float) and not isinstance(x, bool)


def is_string(x: object) -> bool:
    return isinstance(x, str)


def is_bool(x: object) -> bool:
    return isinstance(x, bool)


def _contains_any(needles: tuple[str, ...]) -> Callable[[str], bool]:
    def test(x: str) -> bool:
        folded = x.lower()
        return any(needle in folded for needle in needles)

    return test


def _in_ranges(ranges: tuple[tuple[float, float], ...]) -> Callable[[float], bool]:
    return lambda x: any(low <= x <= high for low, high in ranges)


def _string_in(values: tuple[str, ...]) -> Callable[[str], bool]:
    folded = frozenset(values)
    return lambda x: x.lower() in folded


# Builds an operator's positive predicate from its normalized filter values (strings lower-cased).
PREDICATES: dict[str, Callable[[tuple], Callable[[Any], bool]]] = {
    "NumberIn": lambda vs: frozenset(vs).__contains__,
    "NumberLessThan": lambda vs: lambda x: x < vs[0],
    "NumberGreaterThan": lambda vs: lambda x: x > vs[0],
    "NumberLessThanOrEquals": lambda vs: lambda x: x <= vs[0],
    "NumberGreaterThanOrEquals": lambda vs: lambda x: x >= vs[0],
    "NumberInRange": _in_ranges,
    "BoolEquals": lambda vs: lambda x: x is vs[0],
    "StringIn": _string_in,
    "StringBeginsWith": lambda vs: lambda x: x.lower().startswith(vs),
    "StringEndsWith": lambda vs: lambda x: x.lower().endswith(vs),
    "StringContains": _contains_any,
}


@dataclass(frozen=True, slots=True)
class Operator:
    """One `operatorType`: how its value is given and checked, and how a failure reads."""

    name: str
    accepts: Callable[[object], bool] | None  # the event value type it compares; None for presence checks
    arity: str  # "value", "values", "ranges" or "none"
    relation: Callable[[Any, Any], bool]  # event value vs one filter value, positive form (for explain)
    phrase: str  # "value 3 {phrase} 5" when the relation holds
    failed_phrase: str  # "value 3 {failed_phrase} [5, 1]" when a positive operator fails
    positive: str = ""  # the operator whose predicate this one uses: itself, or the one it negates
    negated: bool = False
    missing_matches: bool = False


def _within(x: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= x <= bounds[1]


def _begins(x: str, v: str) -> bool:
    return x.startswith(v)


def _ends(x: str, v: str) -> bool:
    return x.endswith(v)


def _contains(x: str, v: str) -> bool:
    return v in x


_num, _str = is_number, is_string
_POSITIVE_OPERATORS = (
    Operator("NumberIn", _num, "values", operator.eq, "equals", "is not in"),
    Operator("NumberLessThan", _num, "value", operator.lt, "", "is not less than"),
    Operator("NumberGreaterThan", _num, "value", operator.gt, "", "is not greater than"),
    Operator("NumberLessThanOrEquals", _num, "value", operator.le, "", "is not less than or equal to"),
    Operator("NumberGreaterThanOrEquals", _num, "value", operator.ge, "", "is not greater than or equal to"),
    Operator("NumberInRange", _num, "ranges", _within, "is in range", "is not in any of the ranges"),
    Operator("BoolEquals", is_bool, "value", operator.eq, "", "is not"),
    Operator("StringIn", _str, "values", operator.eq, "equals", "is not in"),
    Operator("StringBeginsWith", _str, "values", _begins, "begins with", "does not begin with any of"),
    Operator("StringEndsWith", _str, "values", _ends, "ends with", "does not end with any of"),
    Operator("StringContains", _str, "values", _contains, "contains", "does not contain any of"),
    Operator("IsNullOrUndefined", None, "none", operator.eq, "", ""),
    Operator("IsNotNull", None, "none", operator.eq, "", ""),
)
# Negated operators: (the operator negated, whether a missing key matches). event-filtering: a missing key matches
# NumberNotIn and StringNotIn but not the StringNot{BeginsWith,EndsWith,Contains} family; NumberNotInRange is
# not listed, so it follows NumberNotIn.
_NEGATIONS = {
    "NumberNotIn": ("NumberIn", True),
    "NumberNotInRange": ("NumberInRange", True),
    "StringNotIn": ("StringIn", True),
    "StringNotBeginsWith": ("StringBeginsWith", False),
    "StringNotEndsWith": ("StringEndsWith", False),
    "StringNotContains": ("StringContains", False),
}


def _operators() -> dict[str, Operator]:
    """Every operator by lower-cased name (ARM discriminators are case-insensitive)."""
    ops = {op.name: replace(op, positive=op.name) for op in _POSITIVE_OPERATORS}
    for name, (base, missing_matches) in _NEGATIONS.items():
        ops[name] = replace(ops[base], name=name, failed_phrase="", negated=True, missing_matches=missing_matches)
    return {name.lower(): op for name, op in ops.items()}


OPERATORS = _operators()


def canonical_operator(name: str) -> str:
    """An operator name as Azure spells it (`numberin` → `NumberIn`); `KeyError` if there is no such operator."""
    return OPERATORS[name.lower()].name


def find_operator(name: object) -> str | None:
    """`canonical_operator` for any JSON value; None when it names no operator."""
    op = OPERATORS.get(name.lower()) if isinstance(name, str) else None
    return None if op is None else op.name


