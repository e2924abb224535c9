"""`SubscriptionIndex`: the compiled filters of one topic's subscriptions, indexed on subject prefix and event
type so that matching an event looks at few of them."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from commgrid.grid.filters import CompiledFilter, subject_of, type_key

K = TypeVar("K")


class _PrefixTree(Generic[K]):
    """A compressed trie on case-folded subject prefixes; each node groups its filters by event type.

    Walking it with a subject visits only the nodes whose prefix the subject starts with, so the cost grows
    with the number of registered prefixes branching along that subject, not with the number of filters;
    at each node the event's type picks its group (plus the group of filters taking every type, key None).
    """

    __slots__ = ("children", "groups", "label")

    def __init__(self, label: str = "") -> None:
        self.label = label  # this node's prefix is its parent's plus `label`
        # Children by the first character of their label; None for a leaf, so the walk stops without
        # touching an empty dict (with thousands of filters, memory touched per event is the cost).
        self.children: dict[str, _PrefixTree[K]] | None = None
        self.groups: dict[str | None, dict[K, CompiledFilter]] | None = None

    def node(self, prefix: str) -> _PrefixTree[K]:
        """The node for `prefix`, created (splitting an edge if needed) when absent."""
        node, i = self, 0
        while i < len(prefix):
            if node.children is None:
                node.children = {}
            child = node.children.get(prefix[i])
            if child is None:
                child = node.children[prefix[i]] = _PrefixTree(prefix[i:])
                return child
            shared = _shared_length(child.label, prefix, i)
            if shared < len(child.label):
                middle: _PrefixTree[K] = _PrefixTree(child.label[:shared])
                child.label = child.label[shared:]
                middle.children = {child.label[0]: child}
                node.children[prefix[i]] = child = middle
            node, i = child, i + shared
        return node

    def discard(self, prefix: str, event_type: str | None, key: K) -> None:
        """Remove `key` from a group of the node for `prefix`, then prune nodes left empty or pass-through."""
        path: list[_PrefixTree[K]] = []
        node, i = self, 0
        while i < len(prefix):
            path.append(node)
            assert node.children is not None
            node = node.children[prefix[i]]
            i += len(node.label)
        groups = node.groups
        assert groups is not None
        del groups[event_type][key]
        if not groups[event_type]:
            del groups[event_type]
        node.groups = groups or None
        while path and node.groups is None and len(node.children or ()) <= 1:
            parent = path.pop()
            assert parent.children is not None
            if node.children:  # one child left: splice it into this node's place
                (child,) = node.children.values()
                child.label = node.label + child.label
                parent.children[node.label[0]] = child
                return
            del parent.children[node.label[0]]
            parent.children = parent.children or None
            node = parent

    def walk(self, folded: str) -> list[dict[str | None, dict[K, CompiledFilter]]]:
        """The type groups of every registered prefix that `folded` starts with."""
        found = []
        node, i, end = self, 0, len(folded)
        while True:
            if node.groups is not None:
                found.append(node.groups)
            if i == end or node.children is None:
                return found
            child = node.children.get(folded[i])
            if child is None:
                return found
            label = child.label  # its first character is known to match
            if len(label) > 1 and not folded.startswith(label, i):
                return found
            node, i = child, i + len(label)


def _shared_length(label: str, text: str, start: int) -> int:
    n, limit = 0, min(len(label), len(text) - start)
    while n < limit and label[n] == text[start + n]:
        n += 1
    return n


class SubscriptionIndex(Generic[K]):
    """The filters of one topic's subscriptions, indexed so matching an event looks at few of them.

    Filters live in a prefix tree on their case-folded `subjectBeginsWith`, grouped at each node by
    lower-cased event type (group None: filters taking every type). Matching walks the event's subject down
    the tree and runs the remaining checks only on the event type's groups met on the way. Case-sensitive
    prefixes share the tree: case folding works character by character, so a subject that starts with a
    prefix also does once both are folded, and `CompiledFilter.passes_rest` then checks the exact prefix.
    All filters must be compiled for the schema of the events given to `match`.
    """

    def __init__(self) -> None:
        self._filters: dict[K, CompiledFilter] = {}
        self._tree: _PrefixTree[K] = _PrefixTree()

    def __len__(self) -> int:
        return len(self._filters)

    def __contains__(self, key: object) -> bool:
        return key in self._filters

    def add(self, key: K, compiled: CompiledFilter) -> None:
        """Register `compiled` under `key`, replacing any filter already registered under it."""
        self.remove(key)
        self._filters[key] = compiled
        node = self._tree.node(compiled.index_prefix)
        if node.groups is None:
            node.groups = {}
        for event_type in compiled.included_event_types or (None,):
            node.groups.setdefault(event_type, {})[key] = compiled

    def remove(self, key: K) -> None:
        """Forget the filter registered under `key`; no-op if there is none."""
        compiled = self._filters.pop(key, None)
        if compiled is not None:
            for event_type in compiled.included_event_types or (None,):
                self._tree.discard(compiled.index_prefix, event_type, key)

    def match(self, event: dict, schema: str) -> list[K]:
        """The keys of every filter that `event` (a dict in `schema`) passes, in no particular order."""
        event_type = event.get(type_key(schema))
        event_type = event_type.lower() if isinstance(event_type, str) else _NO_TYPE
        subject = subject_of(event)
        folded = subject.casefold()
        matched: list[K] = []
        for groups in self._tree.walk(folded):
            for group in (groups.get(event_type), groups.get(None)):
                if group:
                    matched.extend(key for key, f in group.items() if f.passes_rest(event, subject, folded))
        return matched


_NO_TYPE: Any = object()  # the type of an event without one: it only meets the filters taking every type
