"""`SubscriptionIndex`: the compiled filters of one topic's subscriptions, indexed on event type and subject
prefix so that matching an event looks at few of them.

With 100,000 subscriptions the index is far larger than the CPU caches, and each object a match touches
that no recent event touched costs a trip to memory: a fraction of a microsecond, against about two for a
whole match on a small topic. So the layout aims at touching few objects per event: the event type picks
one trie (plus the one of filters taking every type), so an event never meets other types' filters, and
each trie is walked one subject segment per dict lookup, where a character trie visits one node per
character branching between tenants' prefixes.
"""

from __future__ import annotations

import sys
from typing import Any, Generic, TypeVar

from commgrid.grid.filters import CompiledFilter, subject_of, type_key

K = TypeVar("K")
Group = dict[K, CompiledFilter]  # the filters registered for one exact prefix, by key


class _PrefixTree(Generic[K]):
    """A compressed trie on case-folded subject prefixes; each node holds the filters of its prefix.

    Walking it with a subject visits only the nodes whose prefix the subject starts with, so the cost grows
    with the number of registered prefixes branching along that subject, not with the number of filters.
    """

    __slots__ = ("children", "filters", "label")

    def __init__(self, label: str = "") -> None:
        self.label = label  # this node's prefix is its parent's plus `label`
        # Children by the first character of their label; None for a leaf, so the walk stops without
        # touching an empty dict (with thousands of filters, memory touched per event is the cost).
        self.children: dict[str, _PrefixTree[K]] | None = None
        self.filters: Group[K] | None = None

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

    def discard(self, prefix: str, key: K) -> None:
        """Remove `key` from the node for `prefix`, then prune nodes left empty or pass-through."""
        path: list[_PrefixTree[K]] = []
        node, i = self, 0
        while i < len(prefix):
            path.append(node)
            assert node.children is not None
            node = node.children[prefix[i]]
            i += len(node.label)
        assert node.filters is not None
        del node.filters[key]
        node.filters = node.filters or None
        while path and node.filters is None and len(node.children or ()) <= 1:
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

    def walk(self, folded: str, start: int, found: list[Group[K]]) -> None:
        """Add to `found` the filters of every registered prefix that `folded[start:]` starts with."""
        node, i, end = self, start, len(folded)
        while True:
            if node.filters is not None:
                found.append(node.filters)
            if i == end or node.children is None:
                return
            child = node.children.get(folded[i])
            if child is None:
                return
            label = child.label  # its first character is known to match
            if len(label) > 1 and not folded.startswith(label, i):
                return
            node, i = child, i + len(label)


def _shared_length(label: str, text: str, start: int) -> int:
    n, limit = 0, min(len(label), len(text) - start)
    while n < limit and label[n] == text[start + n]:
        n += 1
    return n


class _Segments(dict[str, "_Segments[K]"], Generic[K]):
    """A trie on the "/"-separated segments of case-folded subject prefixes; the dict holds its children.

    A prefix is cut at each "/": the node reached by the segments before its last "/" holds it, in `filters`
    if the prefix ends with that "/", else as a tail (the text after it) in a `_PrefixTree`. A subject's
    segments lead down the trie with one dict lookup each, and since a tail holds no "/", checking the tails
    of a node needs only the subject's segment at that depth.
    """

    __slots__ = ("filters", "tails")

    def __init__(self) -> None:
        super().__init__()
        self.filters: Group[K] | None = None
        self.tails: _PrefixTree[K] | None = None

    def __bool__(self) -> bool:
        return self.filters is not None or self.tails is not None or len(self) > (_HASHED in self)

    def add(self, prefix: str, key: K, compiled: CompiledFilter) -> None:
        """Register `compiled` under `key` for the case-folded `prefix`."""
        *segments, tail = prefix.split("/")
        node = self
        for segment in segments:
            child = node.get(segment)
            if child is None:
                # One string per distinct segment (tenant, resource ...) across all tries and nodes: each
                # lookup compares the subject's segment with the stored one, so fewer copies, fewer misses.
                child = node[sys.intern(segment)] = _Segments()
                if len(node) == _LARGE:
                    node[_HASHED] = None  # type: ignore[assignment]
            node = child
        target: _Segments[K] | _PrefixTree[K] = node
        if tail:
            if node.tails is None:
                node.tails = _PrefixTree()
            target = node.tails.node(tail)
        if target.filters is None:
            target.filters = {}
        target.filters[key] = compiled

    def discard(self, prefix: str, key: K) -> None:
        """Remove `key` registered for `prefix`, then prune the nodes left empty."""
        *segments, tail = prefix.split("/")
        path = [self]
        for segment in segments:
            path.append(path[-1][segment])
        node = path.pop()
        if tail:
            assert node.tails is not None
            node.tails.discard(tail, key)
            if node.tails.children is None:  # the tails' root never holds filters: a tail is not empty
                node.tails = None
        else:
            assert node.filters is not None
            del node.filters[key]
            node.filters = node.filters or None
        for segment in reversed(segments):
            if node:
                return
            node = path.pop()
            del node[segment]

    def collect(self, parts: list[str], found: list[Group[K]]) -> None:
        """Add to `found` the filters of every registered prefix that the subject split into `parts` starts
        with."""
        node = self
        for part in parts:  # `node` is reached by the segments before `part`, each followed by "/"
            if node.filters is not None:
                found.append(node.filters)
            if node.tails is not None:
                node.tails.walk(part, 0, found)
            if not len(node):
                return
            child = node.get(part)  # after the last part: a node no "/" leads to, never collected
            if child is None:
                return
            node = child


class SubscriptionIndex(Generic[K]):
    """The filters of one topic's subscriptions, indexed so matching an event looks at few of them.

    One `_Segments` trie per lower-cased event type listed in `includedEventTypes`, and one (key None) for
    the filters taking every type; each holds filters by case-folded `subjectBeginsWith`. Matching walks the
    event's subject down its type's trie and the one for every type, then runs the remaining checks on the
    filters found. Case-sensitive prefixes share the tries: case folding works character by character, so
    a subject that starts with a prefix also does once both are folded, and `CompiledFilter.passes_rest`
    then checks the exact prefix. All filters must be compiled for the schema of the events given to `match`.
    """

    def __init__(self) -> None:
        self._filters: dict[K, CompiledFilter] = {}
        self._by_type: dict[str | None, _Segments[K]] = {}

    def __len__(self) -> int:
        return len(self._filters)

    def __contains__(self, key: object) -> bool:
        return key in self._filters

    def add(self, key: K, compiled: CompiledFilter) -> None:
        """Register `compiled` under `key`, replacing any filter already registered under it."""
        self.remove(key)
        self._filters[key] = compiled
        for event_type in compiled.included_event_types or (None,):
            trie = self._by_type.get(event_type)
            if trie is None:
                trie = self._by_type[event_type] = _Segments()
            trie.add(compiled.index_prefix, key, compiled)

    def remove(self, key: K) -> None:
        """Forget the filter registered under `key`; no-op if there is none."""
        compiled = self._filters.pop(key, None)
        if compiled is None:
            return
        for event_type in compiled.included_event_types or (None,):
            trie = self._by_type[event_type]
            trie.discard(compiled.index_prefix, key)
            if not trie:
                del self._by_type[event_type]

    def match(self, event: dict, schema: str) -> list[K]:
        """The keys of every filter that `event` (a dict in `schema`) passes, in no particular order."""
        event_type = event.get(type_key(schema))
        event_type = event_type.lower() if isinstance(event_type, str) else _NO_TYPE
        subject = subject_of(event)
        folded = subject.casefold()
        parts = folded.split("/")
        found: list[Group[K]] = []
        for trie in (self._by_type.get(event_type), self._by_type.get(None)):
            if trie is not None:
                trie.collect(parts, found)
        matched: list[K] = []
        for group in found:
            for key, compiled in group.items():
                if compiled.passes_rest(event, subject, folded):
                    matched.append(key)
        return matched


# A key of another type than str makes CPython give a dict a table that keeps each key's hash beside it: a
# lookup that misses then compares stored hashes instead of reading probed keys, each likely a cache miss in
# a node with many children. Small nodes keep the faster all-str table.
_HASHED: Any = object()
_LARGE = 64
_NO_TYPE: Any = object()  # the type of an event without one: it only meets the filters taking every type
