"""Subscription filters (https://learn.microsoft.com/azure/event-grid/event-filtering): operators, keys, arrays,
validation, explain, index."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgrid.errors import InvalidInput
from commgrid.grid.filter_index import SubscriptionIndex
from commgrid.grid.filter_operators import OPERATOR_NAMES, canonical_operator
from commgrid.grid.filters import (
    CompiledFilter,
    FilterError,
    compile_filter,
)

EG = "EventGridSchema"
CE = "CloudEventSchemaV1_0"
MISSING = object()  # in a table: the event has no such key


def eg_event(data: Any = None, **overrides: Any) -> dict:
    event = {
        "id": "e1",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/topics/t",
        "subject": "/blobServices/default/containers/c/blobs/f.txt",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2024-05-01T12:00:00Z",
        "data": {} if data is None else data,
        "dataVersion": "1.0",
        "metadataVersion": "1",
    }
    event.update(overrides)
    return event


def ce_event(**overrides: Any) -> dict:
    # The CloudEvents example of the event-filtering article [D4].
    event = {
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "id": "C234-1234-1234",
        "time": "2018-04-05T17:31:00Z",
        "subject": None,
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "datacontenttype": "application/json",
        "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True},
    }
    event.update(overrides)
    return event


def advanced(op: str, key: str = "data.key1", *, arrays: bool = False, **operand: Any) -> CompiledFilter:
    clause = {"operatorType": op, "key": key, **operand}
    return compile_filter({"advancedFilters": [clause], "enableAdvancedFilteringOnArrays": arrays}, EG)


def with_key1(value: Any) -> dict:
    return eg_event({} if value is MISSING else {"key1": value})


# ----------------------------------------------------------------------------------------------------
# Every operator on scalar values; filter values are the article's examples [D4].

NUMBER_IN = {"values": [5, 1]}
NUMBER_NOT_IN = {"values": [41, 0]}
RANGES = {"values": [[3.14159, 999.95], [3000, 4000]]}
CONTAINS = {"values": ["microsoft", "azure"]}
NOT_CONTAINS = {"values": ["contoso", "fabrikam"]}
BEGINS = {"values": ["event", "message"]}
ENDS = {"values": ["jpg", "jpeg", "png"]}
STRING_IN = {"values": ["contoso", "fabrikam", "factory"]}
STRING_NOT_IN = {"values": ["aws", "bridge"]}

SCALAR_CASES = [
    ("NumberIn", NUMBER_IN, 5, True),
    ("NumberIn", NUMBER_IN, 1.0, True),
    ("NumberIn", NUMBER_IN, 2, False),
    ("NumberIn", NUMBER_IN, "5", False),  # numeric strings are not numbers
    ("NumberIn", {"values": [1]}, True, False),  # bools are not numbers, although True == 1 in Python
    ("NumberNotIn", NUMBER_NOT_IN, 5, True),
    ("NumberNotIn", NUMBER_NOT_IN, 0, False),
    ("NumberNotIn", NUMBER_NOT_IN, 41.0, False),
    ("NumberNotIn", NUMBER_NOT_IN, "0", True),  # a string never equals a number
    ("NumberNotIn", NUMBER_NOT_IN, False, True),
    ("NumberLessThan", {"value": 100}, 99, True),
    ("NumberLessThan", {"value": 100}, 100, False),
    ("NumberLessThan", {"value": 100}, "99", False),
    ("NumberGreaterThan", {"value": 20}, 20.5, True),
    ("NumberGreaterThan", {"value": 20}, 20, False),
    ("NumberGreaterThan", {"value": 20}, True, False),
    ("NumberLessThanOrEquals", {"value": 100}, 100, True),
    ("NumberLessThanOrEquals", {"value": 100}, 100.01, False),
    ("NumberGreaterThanOrEquals", {"value": 30}, 30, True),
    ("NumberGreaterThanOrEquals", {"value": 30}, 29.9, False),
    ("NumberGreaterThanOrEquals", {"value": -1.5}, -1, True),
    ("NumberInRange", RANGES, 3.14159, True),  # bounds are inclusive
    ("NumberInRange", RANGES, 999.95, True),
    ("NumberInRange", RANGES, 3500, True),
    ("NumberInRange", RANGES, 1000, False),
    ("NumberInRange", RANGES, 3, False),
    ("NumberInRange", RANGES, "3500", False),
    ("NumberNotInRange", RANGES, 1000, True),
    ("NumberNotInRange", RANGES, 4000, False),
    ("NumberNotInRange", RANGES, 500, False),
    ("BoolEquals", {"value": True}, True, True),
    ("BoolEquals", {"value": True}, False, False),
    ("BoolEquals", {"value": False}, False, True),
    ("BoolEquals", {"value": True}, "true", False),  # needs a real bool
    ("BoolEquals", {"value": True}, 1, False),
    ("StringContains", CONTAINS, "azure data factory", True),
    ("StringContains", CONTAINS, "Microsoft Teams", True),  # case-insensitive
    ("StringContains", CONTAINS, "aws lambda", False),
    ("StringContains", {"values": ["5"]}, 5, False),  # numbers under data are not strings
    ("StringNotContains", NOT_CONTAINS, "azure", True),
    ("StringNotContains", NOT_CONTAINS, "CONTOSO ltd", False),
    ("StringNotContains", NOT_CONTAINS, "the fabrikam shop", False),
    ("StringBeginsWith", BEGINS, "event hubs", True),
    ("StringBeginsWith", BEGINS, "MESSAGE queue", True),
    ("StringBeginsWith", BEGINS, "the event", False),
    ("StringNotBeginsWith", BEGINS, "the event", True),
    ("StringNotBeginsWith", BEGINS, "Event hubs", False),
    ("StringEndsWith", ENDS, "eventgrid.png", True),
    ("StringEndsWith", ENDS, "PHOTO.JPG", True),
    ("StringEndsWith", ENDS, "anim.gif", False),
    ("StringNotEndsWith", ENDS, "anim.gif", True),
    ("StringNotEndsWith", ENDS, "a.PNG", False),
    ("StringIn", STRING_IN, "Fabrikam", True),
    ("StringIn", STRING_IN, "factory", True),
    ("StringIn", STRING_IN, "fabrikam inc", False),  # exact match, not substring
    ("StringIn", STRING_IN, {"contoso": 1}, False),
    ("StringNotIn", STRING_NOT_IN, "azure", True),
    ("StringNotIn", STRING_NOT_IN, "AWS", False),
    ("StringNotIn", STRING_NOT_IN, 5, True),
    ("IsNullOrUndefined", {}, MISSING, True),  # the article's two examples
    ("IsNullOrUndefined", {}, None, True),
    ("IsNullOrUndefined", {}, 0, False),
    ("IsNullOrUndefined", {}, "", False),
    ("IsNullOrUndefined", {}, [], False),
    ("IsNotNull", {}, 5, True),
    ("IsNotNull", {}, "", True),
    ("IsNotNull", {}, False, True),
    ("IsNotNull", {}, None, False),
    ("IsNotNull", {}, MISSING, False),
]


@pytest.mark.parametrize(("op", "operand", "value", "expected"), SCALAR_CASES)
def test_operator_on_scalar(op: str, operand: dict, value: Any, expected: bool) -> None:
    compiled = advanced(op, **operand)
    assert compiled.matches(with_key1(value)) is expected
    assert (compiled.explain(with_key1(value)) is None) is expected


def test_every_operator_is_covered() -> None:
    covered = {op for op, _, _, _ in SCALAR_CASES}
    assert len(covered) == 19  # event-filtering lists 19 operators
    assert covered == set(OPERATOR_NAMES) == {canonical_operator(name.lower()) for name in OPERATOR_NAMES}


# event-filtering: missing key → not matched, except NumberNotIn and StringNotIn (NumberNotInRange follows NumberNotIn).
# A JSON null is treated like a missing key (module docstring).
MISSING_KEY_CASES = [
    ("NumberIn", NUMBER_IN, False),
    ("NumberNotIn", NUMBER_NOT_IN, True),
    ("NumberLessThan", {"value": 1}, False),
    ("NumberGreaterThan", {"value": 1}, False),
    ("NumberLessThanOrEquals", {"value": 1}, False),
    ("NumberGreaterThanOrEquals", {"value": 1}, False),
    ("NumberInRange", RANGES, False),
    ("NumberNotInRange", RANGES, True),
    ("BoolEquals", {"value": False}, False),
    ("StringIn", STRING_IN, False),
    ("StringNotIn", STRING_NOT_IN, True),
    ("StringContains", CONTAINS, False),
    ("StringNotContains", NOT_CONTAINS, False),
    ("StringBeginsWith", BEGINS, False),
    ("StringNotBeginsWith", BEGINS, False),
    ("StringEndsWith", ENDS, False),
    ("StringNotEndsWith", ENDS, False),
    ("IsNullOrUndefined", {}, True),
    ("IsNotNull", {}, False),
]


@pytest.mark.parametrize(("op", "operand", "expected"), MISSING_KEY_CASES)
@pytest.mark.parametrize("absent", [MISSING, None], ids=["missing", "null"])
def test_missing_key(op: str, operand: dict, expected: bool, absent: Any) -> None:
    compiled = advanced(op, **operand)
    assert compiled.matches(with_key1(absent)) is expected
    # A missing intermediate object is a missing key too.
    assert advanced(op, "data.key1.deeper", **operand).matches(with_key1("flat")) is expected


# ----------------------------------------------------------------------------------------------------
# Arrays (event-filtering Arrays; the article's pseudo code for each operator)

TAGS = ["urgent", "customer", "billing"]
ARRAY_CASES = [
    ("StringContains", {"values": ["urgent"]}, TAGS, True, True),
    ("StringContains", {"values": ["urgent"]}, TAGS, False, False),  # flag off: an array is not a string
    ("StringIn", {"values": ["CUSTOMER", "x"]}, TAGS, True, True),
    ("StringBeginsWith", {"values": ["bill"]}, TAGS, True, True),
    ("StringEndsWith", {"values": ["omer"]}, TAGS, True, True),
    ("StringEndsWith", {"values": ["zzz"]}, TAGS, True, False),
    ("StringNotContains", {"values": ["test"]}, TAGS, True, True),
    ("StringNotContains", {"values": ["urgent"]}, TAGS, True, False),  # one pair hits → FAIL_MATCH
    ("StringNotIn", {"values": ["billing"]}, TAGS, True, False),
    ("StringNotBeginsWith", {"values": ["cust"]}, TAGS, True, False),
    ("StringNotEndsWith", {"values": ["ing"]}, TAGS, True, False),
    ("StringNotEndsWith", {"values": ["xyz"]}, TAGS, True, True),
    ("NumberIn", {"values": [1]}, [3, 1], True, True),
    ("NumberIn", {"values": [1]}, ["1", True, 2], True, False),  # other types are ignored
    ("NumberNotIn", {"values": [1]}, [2, "1", True], True, True),
    ("NumberNotIn", {"values": [1]}, [2, 1], True, False),
    ("NumberGreaterThan", {"value": 5}, [1, 10], True, True),
    ("NumberLessThan", {"value": 5}, [10, 20], True, False),
    ("NumberInRange", {"values": [[0, 1]]}, [5, 0.5], True, True),
    ("NumberNotInRange", {"values": [[0, 1]]}, [5, 0.5], True, False),
    ("NumberNotInRange", {"values": [[0, 1]]}, [5, 6], True, True),
    ("BoolEquals", {"value": False}, [True, False], True, True),
    ("BoolEquals", {"value": False}, [True, 0], True, False),
    ("StringIn", {"values": ["a"]}, [], True, False),  # an empty array has no satisfying pair
    ("StringNotIn", {"values": ["a"]}, [], True, True),
    # Arrays of objects cannot be filtered [D4 note]: whatever the operator.
    ("StringIn", {"values": ["a"]}, [{"name": "a"}], True, False),
    ("StringNotIn", {"values": ["a"]}, [{"name": "b"}], True, False),
    ("NumberIn", {"values": [1]}, [1, [1]], True, False),
    # Without the flag an array is a foreign value: negated operators match (module docstring).
    ("StringNotIn", {"values": ["urgent"]}, TAGS, False, True),
    ("NumberNotIn", {"values": [1]}, [1], False, True),
    ("NumberGreaterThan", {"value": 0}, [1], False, False),
    # Presence checks see an array as present, flag or not.
    ("IsNotNull", {}, [], False, True),
    ("IsNullOrUndefined", {}, [None], True, False),
]


@pytest.mark.parametrize(("op", "operand", "value", "arrays", "expected"), ARRAY_CASES)
def test_operator_on_array(op: str, operand: dict, value: list, arrays: bool, expected: bool) -> None:
    compiled = advanced(op, "data.tags", arrays=arrays, **operand)
    event = eg_event({"tags": value})
    assert compiled.matches(event) is expected
    assert (compiled.explain(event) is None) is expected


# ----------------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(
    ("key", "values", "expected"),
    [
        ("ID", ["e1"], True),
        ("Id", ["E1"], True),
        ("id", ["e2"], False),
        ("Topic", ["/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/topics/t"], True),
        ("Subject", ["/blobServices/default/containers/c/blobs/f.txt"], True),
        ("EventType", ["microsoft.storage.blobcreated"], True),
        ("eventtype", ["Microsoft.Storage.BlobDeleted"], False),
        ("DataVersion", ["1.0"], True),
        ("Data.Key1", ["v"], True),  # older docs' spelling
        ("data.KEY1", ["v"], True),  # nested names fall back to a case-insensitive match
        ("data.nested.level2.level3", ["deep"], True),
        ("data.nested.LEVEL2.Level3", ["deep"], True),
        ("data.key1.more", ["v"], False),  # path runs through a string
        ("data.list.0", ["x"], False),  # no indexing into arrays
        ("data", ["whole"], False),  # data is an object, not a string
    ],
)
def test_event_grid_keys(key: str, values: list, expected: bool) -> None:
    event = eg_event({"key1": "v", "nested": {"level2": {"level3": "deep"}}, "list": ["x"]})
    assert advanced("StringIn", key, values=values).matches(event) is expected


def test_exact_property_name_wins_over_case_insensitive_match() -> None:
    event = eg_event({"Key": "upper", "key": "lower"})
    assert advanced("StringIn", "data.key", values=["lower"]).matches(event)
    assert advanced("StringIn", "data.Key", values=["upper"]).matches(event)
    assert advanced("StringIn", "data.KEY", values=["upper", "lower"]).matches(event)


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ({"operatorType": "StringIn", "key": "id", "values": ["c234-1234-1234"]}, True),
        ({"operatorType": "StringIn", "key": "source", "values": ["/mycontext"]}, True),
        ({"operatorType": "StringIn", "key": "type", "values": ["com.example.someevent"]}, True),
        ({"operatorType": "StringIn", "key": "specversion", "values": ["1.0"]}, True),
        ({"operatorType": "StringIn", "key": "comexampleextension1", "values": ["VALUE"]}, True),
        ({"operatorType": "StringIn", "key": "data.appinfoA", "values": ["abc"]}, True),
        ({"operatorType": "NumberIn", "key": "data.appinfoB", "values": [123]}, True),
        ({"operatorType": "BoolEquals", "key": "data.appinfoC", "value": True}, True),
        # The article's extension example: a String operator on the integer extension attribute 5.
        ({"operatorType": "StringBeginsWith", "key": "comexampleothervalue", "values": ["5", "1"]}, True),
        ({"operatorType": "NumberIn", "key": "comexampleothervalue", "values": [5]}, True),
        # ...but values under data keep their JSON type.
        ({"operatorType": "StringIn", "key": "data.appinfoB", "values": ["123"]}, False),
        ({"operatorType": "IsNullOrUndefined", "key": "subject"}, True),
        ({"operatorType": "IsNotNull", "key": "time"}, True),
        ({"operatorType": "StringNotIn", "key": "nosuchextension", "values": ["x"]}, True),
        # Event Grid schema names do not exist in a CloudEvent.
        ({"operatorType": "StringIn", "key": "EventType", "values": ["com.example.someevent"]}, False),
    ],
)
def test_cloudevents_keys(clause: dict, expected: bool) -> None:
    compiled = compile_filter({"advancedFilters": [clause]}, CE)
    assert compiled.matches(ce_event()) is expected


# ----------------------------------------------------------------------------------------------------
# Event types and subject


@pytest.mark.parametrize(
    ("types", "event_type", "expected"),
    [
        (None, "Anything.At.All", True),
        ([], "Anything.At.All", True),
        (["All"], "Anything.At.All", True),
        (["Microsoft.Storage.BlobDeleted", "all"], "Anything.At.All", True),
        (
            ["Microsoft.Storage.BlobCreated", "Microsoft.Storage.BlobDeleted"],
            "Microsoft.Storage.BlobCreated",
            True,
        ),
        (["Microsoft.Storage.BlobCreated"], "MICROSOFT.STORAGE.BLOBCREATED", True),
        (["Microsoft.Storage.BlobCreated"], "Microsoft.Storage.BlobCreatedX", False),
        (["Microsoft.Storage.BlobDeleted"], "Microsoft.Storage.BlobCreated", False),
    ],
)
def test_included_event_types(types: list | None, event_type: str, expected: bool) -> None:
    assert compile_filter({"includedEventTypes": types}, EG).matches(eg_event(eventType=event_type)) is expected
    assert compile_filter({"includedEventTypes": types}, CE).matches(ce_event(type=event_type)) is expected


@pytest.mark.parametrize(
    ("spec", "subject", "expected"),
    [
        (
            {"subjectBeginsWith": "/blobServices/default/containers/mycontainer/log"},
            "/blobServices/default/containers/mycontainer/log/a.jpg",
            True,
        ),
        ({"subjectBeginsWith": "/BLOBSERVICES/default/"}, "/blobServices/default/x", True),
        ({"subjectBeginsWith": "/BLOBSERVICES/", "isSubjectCaseSensitive": True}, "/blobServices/x", False),
        ({"subjectBeginsWith": "/blobServices/", "isSubjectCaseSensitive": True}, "/blobServices/x", True),
        ({"subjectBeginsWith": "/a/*"}, "/a/b", False),  # literal: no wildcards
        ({"subjectBeginsWith": "/a/*"}, "/a/*/b", True),
        ({"subjectEndsWith": ".jpg"}, "/photos/cat.JPG", True),
        ({"subjectEndsWith": ".jpg", "isSubjectCaseSensitive": True}, "/photos/cat.JPG", False),
        ({"subjectBeginsWith": "/photos/", "subjectEndsWith": ".jpg"}, "/photos/cat.jpg", True),
        ({"subjectBeginsWith": "/photos/", "subjectEndsWith": ".jpg"}, "/videos/cat.jpg", False),
        ({"subjectBeginsWith": "/photos/", "subjectEndsWith": ".jpg"}, "/photos/cat.png", False),
        ({"subjectBeginsWith": ""}, "", True),
        ({"subjectBeginsWith": "/a"}, "", False),
    ],
)
def test_subject_filters(spec: dict, subject: str, expected: bool) -> None:
    assert compile_filter(spec, EG).matches(eg_event(subject=subject)) is expected


def test_cloudevent_without_subject_only_passes_empty_subject_filters() -> None:
    assert compile_filter({"subjectEndsWith": ""}, CE).matches(ce_event())
    assert not compile_filter({"subjectBeginsWith": "/"}, CE).matches(ce_event())
    assert compile_filter({"subjectBeginsWith": "/Orders/"}, CE).matches(ce_event(subject="/orders/1"))


def test_advanced_filters_are_and_across_filters_or_across_values() -> None:
    # The article's OR and AND examples, on Subject.
    either = {
        "operatorType": "StringContains",
        "key": "Subject",
        "values": ["/providers/microsoft.devtestlab/", "/providers/Microsoft.Compute/virtualMachines/"],
    }
    lab = {"operatorType": "StringContains", "key": "Subject", "values": ["/providers/microsoft.devtestlab/"]}
    vms = {
        "operatorType": "StringContains",
        "key": "Subject",
        "values": ["/providers/Microsoft.Compute/virtualMachines/"],
    }
    lab_only = eg_event(subject="/subscriptions/s/providers/Microsoft.DevTestLab/labs/l")
    both = eg_event(subject="/providers/microsoft.devtestlab/x/providers/Microsoft.Compute/virtualMachines/vm")
    assert compile_filter({"advancedFilters": [either]}, EG).matches(lab_only)
    assert not compile_filter({"advancedFilters": [lab, vms]}, EG).matches(lab_only)
    assert compile_filter({"advancedFilters": [lab, vms]}, EG).matches(both)


def test_all_parts_must_pass() -> None:
    compiled = compile_filter(
        {
            "includedEventTypes": ["Microsoft.Communication.SMSReceived"],
            "subjectBeginsWith": "/phonenumber/1555",
            "advancedFilters": [{"operatorType": "StringBeginsWith", "key": "data.message", "values": ["stop"]}],
        },
        EG,
    )
    good = eg_event(
        {"message": "STOP now"},
        eventType="Microsoft.Communication.SMSReceived",
        subject="/phonenumber/15551234567",
    )
    assert compiled.matches(good)
    assert not compiled.matches({**good, "eventType": "Microsoft.Communication.SMSDeliveryReportReceived"})
    assert not compiled.matches({**good, "subject": "/phonenumber/14441234567"})
    assert not compiled.matches({**good, "data": {"message": "hello"}})


def test_no_filter_matches_everything() -> None:
    for spec in (None, {}):
        compiled = compile_filter(spec, EG)
        assert compiled.matches(eg_event()) and compiled.explain(eg_event()) is None
        assert compiled.included_event_types is None and compiled.subject_prefix == ""


def test_field_names_are_case_insensitive() -> None:
    compiled = compile_filter(
        {
            "SubjectBeginsWith": "/A",
            "AdvancedFilters": [{"OperatorType": "numberin", "Key": "data.n", "Values": [1]}],
        },
        EG,
    )
    assert compiled.matches(eg_event({"n": 1}, subject="/a/b"))
    assert not compiled.matches(eg_event({"n": 2}, subject="/a/b"))


def test_index_fields() -> None:
    compiled = compile_filter(
        {"includedEventTypes": ["A.B", "a.b", "C"], "subjectBeginsWith": "/X/y", "subjectEndsWith": ".Z"}, EG
    )
    assert compiled.included_event_types == frozenset({"a.b", "c"})
    assert (compiled.subject_prefix, compiled.subject_begins_with) == ("/x/y", "/X/y")
    assert compiled.is_subject_case_sensitive is False
    sensitive = compile_filter({"subjectBeginsWith": "/X/y", "isSubjectCaseSensitive": True}, EG)
    assert sensitive.subject_prefix == "/X/y" and sensitive.is_subject_case_sensitive


# ----------------------------------------------------------------------------------------------------
# Validation


def problems_of(spec: Any) -> list[str]:
    with pytest.raises(FilterError) as caught:
        compile_filter(spec, EG)
    assert caught.value.status == 400 and isinstance(caught.value, InvalidInput)
    return [d.message for d in caught.value.details]


def clause(op: str = "StringIn", key: str = "data.k", **operand: Any) -> dict:
    return {"operatorType": op, "key": key, **operand}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nope", "filter must be an object, got string."),
        ({"includedEventTypes": "A"}, "includedEventTypes must be a list of strings, got string."),
        ({"includedEventTypes": ["A", 5]}, "includedEventTypes[1] must be a string, got number 5."),
        ({"subjectBeginsWith": 5}, "subjectBeginsWith must be a string, got number."),
        ({"isSubjectCaseSensitive": "yes"}, "isSubjectCaseSensitive must be a boolean, got string."),
        (
            {"enableAdvancedFilteringOnArrays": 1},
            "enableAdvancedFilteringOnArrays must be a boolean, got number.",
        ),
        ({"advancedFilters": {}}, "advancedFilters must be a list, got object."),
        ({"advancedFilters": ["x"]}, "advancedFilters[0] must be an object, got string."),
        (
            {"advancedFilters": [{"key": "data.k", "values": ["a"]}]},
            "advancedFilters[0]: 'operatorType' is required.",
        ),
        (
            {"advancedFilters": [clause("NumberEquals", values=[1])]},
            "advancedFilters[0]: operatorType 'NumberEquals' is not supported; use one of BoolEquals, ",
        ),
        (
            {"advancedFilters": [clause(key="", values=["a"])]},
            "advancedFilters[0]: 'key' must be a property path such as 'data.key1' or 'subject', got ''.",
        ),
        ({"advancedFilters": [clause(key="data..k", values=["a"])]}, "got 'data..k'."),
        ({"advancedFilters": [{"operatorType": "IsNotNull"}]}, "'key' must be a property path"),
        (
            {"advancedFilters": [clause("NumberGreaterThan")]},
            "advancedFilters[0] (NumberGreaterThan): 'value' is required.",
        ),
        (
            {"advancedFilters": [clause("NumberGreaterThan", values=[5])]},
            "'value' is required; NumberGreaterThan takes a single 'value', not 'values'.",
        ),
        (
            {"advancedFilters": [clause("NumberGreaterThan", value="5")]},
            "advancedFilters[0] (NumberGreaterThan).value must be a number, got string '5'.",
        ),
        (
            {"advancedFilters": [clause("NumberLessThan", value=True)]},
            ".value must be a number, got boolean true.",
        ),
        (
            {"advancedFilters": [clause("BoolEquals", value="true")]},
            "advancedFilters[0] (BoolEquals).value must be true or false, got string 'true'.",
        ),
        ({"advancedFilters": [clause("StringIn")]}, "advancedFilters[0] (StringIn): 'values' is required."),
        (
            {"advancedFilters": [clause("StringIn", value="a")]},
            "'values' is required; StringIn takes a list of 'values', not a single 'value'.",
        ),
        ({"advancedFilters": [clause("StringIn", values="a")]}, "'values' must be a non-empty list."),
        ({"advancedFilters": [clause("StringIn", values=[])]}, "'values' must be a non-empty list."),
        (
            {"advancedFilters": [clause("StringIn", values=["a", 1])]},
            "advancedFilters[0] (StringIn).values[1] must be a string, got number 1.",
        ),
        (
            {"advancedFilters": [clause("NumberIn", values=[1, "2"])]},
            "advancedFilters[0] (NumberIn).values[1] must be a number, got string '2'.",
        ),
        (
            {"advancedFilters": [clause("NumberInRange", values=[[5, 1]])]},
            "advancedFilters[0] (NumberInRange).values[0] must be a [low, high] pair of numbers with "
            "low <= high, "
            "got [5, 1].",
        ),
        ({"advancedFilters": [clause("NumberNotInRange", values=[[1, 2, 3]])]}, "got [1, 2, 3]."),
        (
            {"advancedFilters": [clause("NumberNotInRange", values=[1])]},
            "values[0] must be a [low, high] pair",
        ),
        ({"advancedFilters": [clause("NumberInRange", values=[["1", 2]])]}, "got ['1', 2]."),
        (
            {"advancedFilters": [clause(values=["x" * 513])]},
            "advancedFilters[0] (StringIn).values[0] is 513 characters long; "
            "string values are limited to 512 "
            "characters.",
        ),
    ],
)
def test_validation_problem(spec: Any, expected: str) -> None:
    messages = problems_of(spec)
    assert len(messages) == 1, messages
    assert expected in messages[0]


def test_validation_collects_every_problem() -> None:
    spec = {
        "includedEventTypes": [1],
        "isSubjectCaseSensitive": "no",
        "advancedFilters": [clause("Nope", values=[1]), clause("NumberIn", values=["a"]), clause(key=None)],
    }
    with pytest.raises(FilterError) as caught:
        compile_filter(spec, EG)
    codes = [d.code for d in caught.value.details]
    assert codes == [
        "InvalidFilter",
        "InvalidFilter",
        "InvalidAdvancedFilter",
        "InvalidAdvancedFilter",
        "InvalidAdvancedFilter",
        "InvalidAdvancedFilter",
    ]
    body = caught.value.to_body()["error"]
    assert body["message"].startswith("Invalid event subscription filter: includedEventTypes[0] must be")
    assert len(body["details"]) == 6


def test_limits_allow_exactly_25_filters_and_values_and_512_characters() -> None:
    at_limit = [clause("IsNotNull") for _ in range(24)] + [clause(values=["x" * 512] * 25)]
    assert len(compile_filter({"advancedFilters": at_limit}, EG).clauses) == 25
    ranges = [clause("NumberInRange", values=[[i, i + 1] for i in range(25)])]
    assert len(compile_filter({"advancedFilters": ranges}, EG).clauses) == 1


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            [clause("IsNotNull")] * 26,
            "26 advanced filters given; at most 25 are allowed per event subscription.",
        ),
        (
            [clause(values=["a"] * 13), clause("NumberIn", values=list(range(13)))],
            "26 advanced filter values given across all filters; at most 25 are allowed per event subscription.",
        ),
        (
            [clause("NumberGreaterThan", value=1)] * 20 + [clause(values=["a"] * 6)],
            "26 advanced filter values",
        ),
        ([clause("NumberInRange", values=[[i, i] for i in range(26)])], "26 advanced filter values"),
    ],
)
def test_limits_exceeded(filters: list, expected: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter({"advancedFilters": filters}, EG)
    details = caught.value.details
    assert [d.code for d in details] == ["AdvancedFilterLimitExceeded"]
    assert details[0].message.startswith(expected)


def test_unknown_schema_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="CustomEventSchema"):
        compile_filter({}, "CustomEventSchema")
    with pytest.raises(ValueError):
        SubscriptionIndex().match(eg_event(), "CustomEventSchema")


# ----------------------------------------------------------------------------------------------------
# explain


@pytest.mark.parametrize(
    ("spec", "event", "expected"),
    [
        (
            {"includedEventTypes": ["Microsoft.Communication.SMSReceived"]},
            eg_event(eventType="Other.Type"),
            "includedEventTypes ['Microsoft.Communication.SMSReceived'] does not include event type 'Other.Type'",
        ),
        (
            {"subjectBeginsWith": "/phonenumber/1555"},
            eg_event(subject="phonenumber/15551234567"),
            "subjectBeginsWith '/phonenumber/1555' does not match subject 'phonenumber/15551234567'",
        ),
        (
            {"subjectBeginsWith": "/A", "isSubjectCaseSensitive": True},
            eg_event(subject="/a"),
            "subjectBeginsWith '/A' does not match subject '/a' (case-sensitive)",
        ),
        (
            {"subjectEndsWith": ".jpg"},
            eg_event(subject="/x.png"),
            "subjectEndsWith '.jpg' does not match subject '/x.png'",
        ),
        (
            {
                "advancedFilters": [
                    clause("IsNotNull", "data.a"),
                    clause("IsNotNull", "data.b"),
                    clause("NumberGreaterThan", "data.amount", value=5),
                ]
            },
            eg_event({"a": 1, "b": 2, "amount": 3}),
            "advancedFilters[2] NumberGreaterThan on data.amount: value 3 is not greater than 5",
        ),
        (
            {"advancedFilters": [clause("NumberIn", "data.n", values=[5, 1])]},
            eg_event({"n": 2}),
            "advancedFilters[0] NumberIn on data.n: value 2 is not in [5, 1]",
        ),
        (
            {"advancedFilters": [clause("NumberNotIn", "data.n", values=[41, 0])]},
            eg_event({"n": 0}),
            "advancedFilters[0] NumberNotIn on data.n: value 0 equals 0",
        ),
        (
            {"advancedFilters": [clause("NumberInRange", "data.n", values=[[1, 2]])]},
            eg_event({"n": 3}),
            "advancedFilters[0] NumberInRange on data.n: value 3 is not in any of the ranges [[1, 2]]",
        ),
        (
            {"advancedFilters": [clause("NumberNotInRange", "data.n", values=[[0, 1], [2, 4]])]},
            eg_event({"n": 3}),
            "advancedFilters[0] NumberNotInRange on data.n: value 3 is in range [2, 4]",
        ),
        (
            {"advancedFilters": [clause("BoolEquals", "data.ok", value=True)]},
            eg_event({"ok": False}),
            "advancedFilters[0] BoolEquals on data.ok: value false is not true",
        ),
        (
            {"advancedFilters": [clause("StringBeginsWith", "data.k", values=["event", "message"])]},
            eg_event({"k": "the event"}),
            "advancedFilters[0] StringBeginsWith on data.k: value 'the event' does not begin with any of "
            "['event', 'message']",
        ),
        (
            {"advancedFilters": [clause("StringNotBeginsWith", "data.k", values=["event", "message"])]},
            eg_event({"k": "Message queue"}),
            "advancedFilters[0] StringNotBeginsWith on data.k: value 'Message queue' begins with 'message'",
        ),
        (
            {"advancedFilters": [clause("StringNotContains", "Subject", values=["blobs"])]},
            eg_event(),
            "advancedFilters[0] StringNotContains on Subject: "
            "value '/blobServices/default/containers/c/blobs/f.txt' "
            "contains 'blobs'",
        ),
        (
            {"advancedFilters": [clause("StringIn", "data.k", values=["a"])]},
            eg_event({}),
            "advancedFilters[0] StringIn on data.k: data.k is missing",
        ),
        (
            {"advancedFilters": [clause("StringNotEndsWith", "data.k", values=["a"])]},
            eg_event({"k": None}),
            "advancedFilters[0] StringNotEndsWith on data.k: data.k is null",
        ),
        (
            {"advancedFilters": [clause("NumberLessThan", "data.k", value=1)]},
            eg_event({"k": "0"}),
            "advancedFilters[0] NumberLessThan on data.k: value '0' is a string, not a number",
        ),
        (
            {"advancedFilters": [clause("IsNullOrUndefined", "data.k")]},
            eg_event({"k": 0}),
            "advancedFilters[0] IsNullOrUndefined on data.k: value 0 is not null",
        ),
        (
            {"advancedFilters": [clause("StringIn", "data.k", values=["a"])]},
            eg_event({"k": ["a"]}),
            "advancedFilters[0] StringIn on data.k: "
            "value ['a'] is an array and enableAdvancedFilteringOnArrays is "
            "not set",
        ),
        (
            {
                "enableAdvancedFilteringOnArrays": True,
                "advancedFilters": [clause("StringIn", "data.k", values=["a"])],
            },
            eg_event({"k": ["b", 1]}),
            "advancedFilters[0] StringIn on data.k: no string element of ['b', 1] satisfies StringIn ['a']",
        ),
        (
            {
                "enableAdvancedFilteringOnArrays": True,
                "advancedFilters": [clause("StringNotIn", "data.k", values=["x", "A"])],
            },
            eg_event({"k": ["b", "a"]}),
            "advancedFilters[0] StringNotIn on data.k: element 'a' equals 'A'",
        ),
        (
            {
                "enableAdvancedFilteringOnArrays": True,
                "advancedFilters": [clause("StringIn", "data.k", values=["a"])],
            },
            eg_event({"k": [{"v": "a"}]}),
            "advancedFilters[0] StringIn on data.k: "
            "value [{...}] is an array of objects or arrays, which cannot be "
            "filtered",
        ),
    ],
)
def test_explain(spec: dict, event: dict, expected: str) -> None:
    compiled = compile_filter(spec, EG)
    assert compiled.explain(event) == expected
    assert not compiled.matches(event)


def test_explain_cloudevent_without_type() -> None:
    compiled = compile_filter({"includedEventTypes": ["A"]}, CE)
    assert (
        compiled.explain({"id": "1", "source": "/s"})
        == "includedEventTypes ['A'] does not match: the event has no type"
    )


# ----------------------------------------------------------------------------------------------------
# Random filters and events: explain agrees with matches, and the index agrees with a full scan.

TYPES = ["A.Created", "a.deleted", "B.Updated", "All"]
SUBJECT_PARTS = ["/", "a", "A", "b", "B", "ab", "/x"]


def random_subject(rng: random.Random, max_parts: int = 4) -> str:
    return "".join(rng.choice(SUBJECT_PARTS) for _ in range(rng.randint(0, max_parts)))


def random_clause(rng: random.Random) -> dict:
    op, key = rng.choice(
        [
            ("NumberIn", "data.n"),
            ("NumberNotIn", "data.n"),
            ("NumberGreaterThan", "data.n"),
            ("NumberLessThanOrEquals", "data.n"),
            ("NumberInRange", "data.n"),
            ("NumberNotInRange", "data.n"),
            ("BoolEquals", "data.flag"),
            ("StringIn", "data.s"),
            ("StringNotIn", "data.s"),
            ("StringContains", "Subject"),
            ("StringNotContains", "data.s"),
            ("StringBeginsWith", "data.s"),
            ("StringNotEndsWith", "data.s"),
            ("IsNullOrUndefined", "data.n"),
            ("IsNotNull", "data.s"),
        ]
    )
    if op in ("NumberGreaterThan", "NumberLessThanOrEquals"):
        return clause(op, key, value=rng.randint(0, 3))
    if op in ("NumberInRange", "NumberNotInRange"):
        low = rng.randint(0, 3)
        return clause(op, key, values=[[low, low + rng.randint(0, 2)]])
    if op == "BoolEquals":
        return clause(op, key, value=rng.random() < 0.5)
    if op.startswith("Is"):
        return clause(op, key)
    if op.startswith("Number"):
        return clause(op, key, values=rng.sample(range(4), rng.randint(1, 2)))
    return clause(op, key, values=[rng.choice(["a", "B", "ab", "x"]) for _ in range(rng.randint(1, 2))])


def random_filter(rng: random.Random) -> dict:
    spec: dict[str, Any] = {}
    if rng.random() < 0.7:
        spec["includedEventTypes"] = rng.sample(TYPES, rng.randint(1, 2))
    if rng.random() < 0.7:
        spec["subjectBeginsWith"] = random_subject(rng, 3)
    if rng.random() < 0.3:
        spec["subjectEndsWith"] = random_subject(rng, 1)
    if rng.random() < 0.5:
        spec["isSubjectCaseSensitive"] = True
    if rng.random() < 0.3:
        spec["enableAdvancedFilteringOnArrays"] = True
    if rng.random() < 0.5:
        spec["advancedFilters"] = [random_clause(rng) for _ in range(rng.randint(1, 2))]
    return spec


def random_event(rng: random.Random) -> dict:
    data: dict[str, Any] = {}
    for name, make in (
        ("n", lambda: rng.choice([0, 1, 2.0, 3, "1", True, None, [1, 3], [{"n": 1}]])),
        ("s", lambda: rng.choice(["a", "AB", "xb", "", 1, ["a", "q"], None])),
        ("flag", lambda: rng.choice([True, False, "true", [False]])),
    ):
        if rng.random() < 0.8:
            data[name] = make()
    event_type = rng.choice([*TYPES, "c.other"])
    if rng.random() < 0.3:
        event_type = event_type.upper()  # event types compare case-insensitively
    return eg_event(data, eventType=event_type, subject=random_subject(rng))


@pytest.mark.parametrize("seed", range(5))
def test_explain_is_none_exactly_when_matching(seed: int) -> None:
    rng = random.Random(seed)
    filters = [compile_filter(random_filter(rng), EG) for _ in range(60)]
    events = [random_event(rng) for _ in range(60)]
    outcomes = [(f.matches(e), f.explain(e)) for f in filters for e in events]
    assert all((reason is None) is matched for matched, reason in outcomes)
    assert 0.05 < sum(matched for matched, _ in outcomes) / len(outcomes) < 0.95  # the data exercises both


def agreeing_matches(index: SubscriptionIndex[str], filters: dict[str, Any], events: list[dict[str, Any]]) -> int:
    """Assert the index matches each event to exactly the filters that match it one by one; the matches found."""
    hits = 0
    for event in events:
        expected = sorted(k for k, f in filters.items() if f.matches(event))
        assert sorted(index.match(event, EG)) == expected, event
        hits += len(expected)
    return hits


@pytest.mark.parametrize("seed", range(5))
def test_index_agrees_with_full_scan(seed: int) -> None:
    rng = random.Random(seed)
    filters = {f"sub{i}": compile_filter(random_filter(rng), EG) for i in range(300)}
    index: SubscriptionIndex[str] = SubscriptionIndex()
    for key, compiled in filters.items():
        index.add(key, compiled)
    events = [random_event(rng) for _ in range(200)]

    def check() -> int:
        return agreeing_matches(index, filters, events)

    assert check() > 0
    for key in rng.sample(sorted(filters), 150):  # removal prunes and merges tree nodes
        index.remove(key)
        del filters[key]
    check()
    for key in rng.sample(sorted(filters), 50):  # re-adding under a key replaces the filter
        filters[key] = compile_filter(random_filter(rng), EG)
        index.add(key, filters[key])
    check()
    assert len(index) == len(filters)


# Subjects and prefixes from pieces that stress the segment trie: empty segments ("//"), a leading or
# trailing "/", case variants, and "ß", which case-folds to "ss" (so a folded prefix can end mid-character).
INDEX_PIECES = ["/", "a", "A", "b", "ss", "SS", "ß", "t1", "T1"]
index_texts = st.lists(st.sampled_from(INDEX_PIECES), max_size=6).map("".join)
index_specs = st.fixed_dictionaries(
    {},
    optional={
        "includedEventTypes": st.lists(st.sampled_from(TYPES), max_size=2),
        "subjectBeginsWith": index_texts,
        "subjectEndsWith": st.sampled_from(["a", "/", "ss", "1"]),
        "isSubjectCaseSensitive": st.booleans(),
    },
)
index_events = st.builds(
    lambda subject, event_type: eg_event(subject=subject, eventType=event_type),
    index_texts,
    st.sampled_from([*TYPES, "a.created", "c.other"]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.one_of(st.none(), index_specs)), min_size=1, max_size=30),
    st.lists(index_events, min_size=1, max_size=10),
)
def test_index_agrees_with_every_filter_after_adds_and_removes(
    operations: list[tuple[int, dict | None]], events: list[dict]
) -> None:
    # Each operation registers a filter under a key (replacing any) or, with None, removes the key.
    index: SubscriptionIndex[int] = SubscriptionIndex()
    live: dict[int, CompiledFilter] = {}
    for key, spec in operations:
        if spec is None:
            index.remove(key)
            live.pop(key, None)
        else:
            live[key] = compile_filter(spec, EG)
            index.add(key, live[key])
        for event in events:
            assert sorted(index.match(event, EG)) == sorted(k for k, f in live.items() if f.matches(event))
    assert len(index) == len(live)


def test_index_with_many_tenants_under_one_segment() -> None:
    # Hundreds of siblings make the node's dict large (its lookups then compare stored hashes); removing
    # most of them shrinks it again, and every step must still agree with evaluating each filter.
    rng = random.Random(11)
    tenants = [f"/tenants/t{i}" for i in range(300)]
    live: dict[int, CompiledFilter] = {}
    index: SubscriptionIndex[int] = SubscriptionIndex()
    for key in range(900):
        ending = rng.choice(["/", "/orders/", "/orders/1", ""])
        spec: dict[str, Any] = {"subjectBeginsWith": rng.choice(tenants) + ending}
        if rng.random() < 0.7:
            spec["includedEventTypes"] = rng.sample(TYPES[:3], rng.randint(1, 2))
        live[key] = compile_filter(spec, EG)
        index.add(key, live[key])
    events = [
        eg_event(subject=f"{rng.choice(tenants)}{rng.choice(['', '0', '/orders/12', '/Orders/1'])}",
                 eventType=rng.choice(TYPES))
        for _ in range(300)
    ]

    def check() -> int:
        return agreeing_matches(index, live, events)

    assert check() > 100
    for key in rng.sample(sorted(live), 850):
        index.remove(key)
        del live[key]
    check()
    for key in list(live):
        index.remove(key)
    assert len(index) == 0 and all(index.match(event, EG) == [] for event in events)
    assert not index._by_type  # every node pruned: a topic whose subscriptions go leaves nothing behind


def test_index_handles_both_case_modes_and_shared_prefixes() -> None:
    index: SubscriptionIndex[int] = SubscriptionIndex()
    specs = [
        {"subjectBeginsWith": "/Orders/"},
        {"subjectBeginsWith": "/Orders/", "isSubjectCaseSensitive": True},
        {"subjectBeginsWith": "/orders/", "isSubjectCaseSensitive": True},
        {"subjectBeginsWith": "/ord"},
        {"subjectBeginsWith": "/orders/1", "includedEventTypes": ["Order.Created"]},
        {"subjectBeginsWith": "/orders/12", "includedEventTypes": ["order.deleted"]},
        {},
    ]
    for i, spec in enumerate(specs):
        index.add(i, compile_filter(spec, EG))
    created = eg_event(subject="/orders/123", eventType="ORDER.CREATED")
    assert sorted(index.match(created, EG)) == [0, 2, 3, 4, 6]
    assert sorted(index.match({**created, "subject": "/Orders/123"}, EG)) == [0, 1, 3, 4, 6]
    assert sorted(index.match({**created, "eventType": "Order.Deleted"}, EG)) == [0, 2, 3, 5, 6]
    assert sorted(index.match({**created, "subject": "/o"}, EG)) == [6]
    index.remove(3)
    index.remove(3)  # removing an unknown key is a no-op
    assert 3 not in index and len(index) == 6
    assert sorted(index.match(created, EG)) == [0, 2, 4, 6]
    for key in (0, 1, 2, 4, 5, 6):
        index.remove(key)
    assert index.match(created, EG) == [] and len(index) == 0


def test_index_with_cloudevents() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("typed", compile_filter({"includedEventTypes": ["com.example.someevent"]}, CE))
    index.add("other", compile_filter({"includedEventTypes": ["com.example.other"]}, CE))
    index.add("subject", compile_filter({"subjectBeginsWith": "/a"}, CE))
    assert index.match(ce_event(), CE) == ["typed"]
    assert sorted(index.match(ce_event(subject="/A/b"), CE)) == ["subject", "typed"]


def test_case_sensitive_prefix_is_found_although_lower_would_change_the_prefix() -> None:
    # str.lower turns a final Σ into ς but a medial one into σ; case folding does not depend on context, so
    # the one tree of case-folded prefixes still finds this case-sensitive filter.
    compiled = compile_filter({"subjectBeginsWith": "/ΑΣ", "isSubjectCaseSensitive": True}, EG)
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("greek", compiled)
    event = eg_event(subject="/ΑΣΑ")
    assert compiled.matches(event) and index.match(event, EG) == ["greek"]
    assert index.match(eg_event(subject="/ασα"), EG) == []


def test_case_insensitive_subject_uses_case_folding() -> None:
    compiled = compile_filter({"subjectBeginsWith": "/STRASSE/"}, EG)
    assert compiled.matches(eg_event(subject="/Straße/1"))
    assert compiled.index_prefix == "/strasse/"


def test_index_event_without_type_meets_only_filters_for_all_types() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("typed", compile_filter({"includedEventTypes": ["A"]}, CE))
    index.add("any", compile_filter({"includedEventTypes": ["All"]}, CE))
    assert index.match({"id": "1", "source": "/s", "specversion": "1.0"}, CE) == ["any"]
