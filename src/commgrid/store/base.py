"""The storage protocol every commgrid backend implements, and the records it moves.

Backends (`sqlite.py`, `postgres.py`) pass the same contract suite (`tests/store/test_contract.py`).
Driver errors never leave a backend: callers see `StoreError` subclasses.
Times are POSIX seconds (float) so that both backends compare them the same way.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from commgrid.grid.properties import ACTIVE, SubscriptionProperties
from commgrid.grid.topic_options import TopicOptions

# The store's errors, re-exported: callers of the protocol catch them from here.
from commgrid.store.errors import AlreadyExists as AlreadyExists
from commgrid.store.errors import Missing as Missing
from commgrid.store.errors import StoreError as StoreError
from commgrid.store.errors import StoreNotOpen as StoreNotOpen
from commgrid.store.errors import VersionConflict as VersionConflict


@dataclass(slots=True)
class Topic:
    """A topic events are published to: a custom topic or the Communication Services system topic."""

    name: str
    arm_id: str
    input_schema: str = "EventGridSchema"
    kind: str = "custom"  # "custom" | "system"
    key1: str = ""
    key2: str = ""
    created_at: float = 0.0
    #: The ARM resource's `location` and `tags`, kept as the management API was given them.
    location: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    #: commgrid's own options (the `commgrid` object beside ARM's `properties`).
    options: TopicOptions = field(default_factory=TopicOptions)


@dataclass(slots=True)
class NewEvent:
    """An event about to be stored; `body` is its JSON envelope in the topic's input schema."""

    topic: str
    id: str
    type: str
    subject: str
    time: str
    body: bytes
    #: Publish dedupe: for this long after it is stored, another event of the topic with this id is dropped.
    dedupe_seconds: float = 0.0


@dataclass(slots=True)
class StoredEvent:
    seq: int
    topic: str
    id: str
    type: str
    subject: str
    time: str
    published_at: float
    body: bytes


@dataclass(slots=True)
class Route:
    """A delivery to create with an event: `event_index` points into the `append_events` list."""

    event_index: int
    subscription: str
    #: The event's ordering key for an ordered subscription (see grid/ordering.py), else None.
    order_key: str | None = None
    #: Store the delivery already claimed under `append_events`' lease (the publishing node delivers it).
    leased: bool = False


@dataclass(slots=True)
class Lease:
    """A claim taken as deliveries are created: `owner` holds them until `until` (see `Store.append_events`)."""

    owner: str
    until: float


@dataclass(slots=True)
class Subscription:
    """An event subscription; the store keeps `properties.to_arm()` as JSON."""

    topic: str
    name: str
    properties: SubscriptionProperties
    status: str = ACTIVE  # see grid.subscriptions for the states
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Why the stored properties could not be read (`properties` is then a placeholder, never written back).
    unreadable: str | None = None


@dataclass(slots=True)
class Delivery:
    """A pending delivery of one event to one subscription, as claimed by a worker."""

    id: int
    topic: str
    subscription: str
    event: StoredEvent
    attempts: int
    next_attempt_at: float
    last_outcome: str | None = None
    last_status: int | None = None
    last_attempt_at: float | None = None
    #: The replay that queued this delivery (`commgrid-replay` header), None for a publish's own delivery.
    replay_id: str | None = None


@dataclass(slots=True)
class Attempt:
    """What happened when a delivery was tried, recorded by `reschedule` or `dead_letter`."""

    outcome: str
    status: int | None
    at: float


@dataclass(slots=True)
class DeadLetter:
    id: int
    topic: str
    subscription: str
    event: StoredEvent
    reason: str
    attempts: int
    last_outcome: str | None
    last_status: int | None
    last_attempt_at: float | None
    dead_lettered_at: float


@dataclass(slots=True)
class AttemptRecord:
    """One delivery attempt as the operator console and `events show` report it (kept up to a retention limit)."""

    topic: str
    subscription: str
    event_seq: int
    attempt: int  # 1 for the first try
    at: float
    outcome: str  # "Succeeded", or the failure's lastDeliveryOutcome (grid.retry.Outcome)
    status: int | None
    duration: float  # seconds until the response (or the error)
    error: str | None = None
    response: str = ""  # the start of the response body


@dataclass(slots=True)
class EventQuery:
    """What the console searches stored events by; every field given must match (subject: as a prefix)."""

    topic: str | None = None
    type: str | None = None
    subject: str | None = None
    id: str | None = None
    before_seq: int | None = None


@dataclass(slots=True)
class Document:
    """A small JSON document of domain state (identities, chat threads, ...), keyed by collection and key."""

    collection: str
    key: str
    value: dict[str, Any]
    version: int = 0


@dataclass(slots=True)
class DocumentWrite:
    """One document change of `Store.write_change`: store `value` (None deletes the document), and with
    `expect_version`, only if the stored version equals it (0: the document must not exist)."""

    collection: str
    key: str
    value: dict[str, Any] | None
    expect_version: int | None = None


@dataclass(slots=True)
class NamespaceResource:
    """A namespace (`topic` and `name` empty), a namespace topic (`name` empty) or a topic's event subscription.

    Keys are lower-case names; `properties` holds the service's typed model as JSON.
    """

    namespace: str
    topic: str
    name: str
    properties: dict[str, Any]
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class LockedEvent:
    """A queued event handed to a pull consumer under `lock_token`; `delivery_count` counts the receives."""

    id: int
    lock_token: str
    delivery_count: int
    event: StoredEvent


@dataclass(slots=True)
class TopicCounts:
    """What the store holds for one topic (`commgrid store stats`)."""

    topic: str
    events: int = 0
    pending_deliveries: int = 0
    dead_letters: int = 0
    oldest_event_at: float | None = None


@dataclass(slots=True)
class StoreStats:
    topics: list[TopicCounts]
    size_bytes: int  # on disk: the database file and its WAL (SQLite), commgrid's tables and indexes (PostgreSQL)
    free_bytes: int = 0  # of size_bytes, pages free for reuse (SQLite)


@dataclass(slots=True)
class Swept:
    """How many records one retention sweep batch deleted."""

    events: int = 0
    dead_letters: int = 0
    attempts: int = 0


LOCK_OK, LOCK_EXPIRED, LOCK_UNKNOWN = "ok", "expired", "unknown"
SETTLE_ACTIONS = ("acknowledge", "release", "renew", "reject")


class Store(abc.ABC):
    """Durable state of one commgrid deployment. All methods are safe to call concurrently."""

    url: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish in-flight work and disconnect."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Drop every table commgrid made (`commgrid reset`); the next `open()` makes them anew."""

    # settings --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_setting(self, key: str) -> str | None:
        """A deployment-wide setting (keys, secrets, resource names), or None."""

    @abc.abstractmethod
    async def set_setting(self, key: str, value: str, *, only_if_absent: bool = False, announce: bool = False) -> str:
        """Store a setting and return the value now stored (the existing one if `only_if_absent`).

        With `announce`, the change counter moves in the same transaction, so every node reloads what it caches
        (access keys, for instance).
        """

    # topics ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_topic(self, topic: Topic) -> None:
        """Add a topic; `AlreadyExists` if the name is taken."""

    @abc.abstractmethod
    async def update_topic(self, topic: Topic) -> None:
        """Replace a topic's fields; `Missing` if absent."""

    @abc.abstractmethod
    async def get_topic(self, name: str) -> Topic:
        """The topic (name compared case-insensitively); `Missing` if absent."""

    @abc.abstractmethod
    async def list_topics(self) -> list[Topic]:
        """All topics, by name."""

    @abc.abstractmethod
    async def delete_topic(self, name: str) -> None:
        """Remove a topic with its subscriptions, events and deliveries; `Missing` if absent."""

    # events ----------------------------------------------------------------------------------------------
    async def wait_for_other_writers(self) -> None:
        """Return once a write of another process in progress, if any, has ended: a group commit waits here
        before it takes its group, so that what arrives meanwhile joins it. By default at once."""
        return

    @abc.abstractmethod
    async def append_events(self, events: Sequence[NewEvent], routes: Sequence[Route], now: float,
                            lease: Lease | None = None) -> list[Delivery]:
        """Durably store events and their deliveries in one transaction: all or nothing.

        When this returns, the events survive a crash. Deliveries are due at `now`. An event with
        `dedupe_seconds` whose (topic, id) was accepted within its window (or earlier in `events`) is dropped
        with its routes; otherwise its id is remembered for `dedupe_seconds`, in the same transaction.

        Given a `lease`, the deliveries of `leased` routes are stored already claimed by `lease.owner` until
        `lease.until` and returned as `claim_due_deliveries` would return them (the publishing node's worker
        sends them without a claim of its own); other routes' deliveries wait for a claim. Without a lease
        nothing is returned.
        """

    @abc.abstractmethod
    async def list_events(self, topic: str, limit: int = 50, before_seq: int | None = None) -> list[StoredEvent]:
        """A topic's events, newest first."""

    @abc.abstractmethod
    async def get_event(self, topic: str, event_id: str) -> StoredEvent:
        """The newest event of a topic with this id; `Missing` if absent."""

    @abc.abstractmethod
    async def count_events(self, topic: str | None = None) -> int:
        """How many events are stored (for one topic, or all)."""

    @abc.abstractmethod
    async def events_in_order(
        self, topic: str, after_seq: int, limit: int, *, until_seq: int | None = None,
        published_from: float | None = None, published_to: float | None = None,
    ) -> list[StoredEvent]:
        """A topic's events after `after_seq` (up to `until_seq`, published within the bounds given), oldest first."""

    # retention, replay and dedupe ------------------------------------------------------------------------
    @abc.abstractmethod
    async def sweep_retention(self, topic: str, events_before: float, dead_letters_before: float,
                              limit: int) -> Swept:
        """Delete, in one short transaction, up to `limit` of the topic's dead letters recorded before
        `dead_letters_before` and up to `limit` of its events published before `events_before`.

        An event with a pending delivery (a queue lock included) or a dead-letter record is kept. Safe while
        other nodes sweep, publish and replay.
        """

    @abc.abstractmethod
    async def forget_published_ids(self, now: float, limit: int) -> int:
        """Forget up to `limit` publish-dedupe records whose window ended before `now`; returns how many."""

    async def reclaim_space(self) -> None:  # noqa: B027 - a no-op where the database reclaims space itself
        """Give free space back to the file system when a lot of it is left after sweeping (SQLite)."""

    @abc.abstractmethod
    async def queue_replay(self, topic: str, subscription: str, seqs: Sequence[int], replay_id: str,
                           now: float) -> int:
        """Add a delivery marked `replay_id` of each event in `seqs` still stored, due from `now` in the order
        given; returns how many were queued."""

    @abc.abstractmethod
    async def stats(self) -> StoreStats:
        """Counts per topic and the size on disk."""

    # subscriptions ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_subscription(self, sub: Subscription) -> None:
        """Add a subscription; `AlreadyExists` if (topic, name) is taken."""

    @abc.abstractmethod
    async def update_subscription(self, sub: Subscription) -> None:
        """Replace a subscription's properties and status; `Missing` if absent."""

    @abc.abstractmethod
    async def get_subscription(self, topic: str, name: str) -> Subscription:
        """The subscription; `Missing` if absent."""

    @abc.abstractmethod
    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Subscriptions of one topic, or of all topics, by topic and name."""

    @abc.abstractmethod
    async def delete_subscription(self, topic: str, name: str) -> None:
        """Remove a subscription and its pending deliveries; `Missing` if absent."""

    @abc.abstractmethod
    async def subscriptions_version(self) -> int:
        """The change counter: it grows whenever a topic, a subscription or an announced setting changes.

        Every node caches those (`grid.routing.Catalog`) and reloads when the counter moves.
        """

    async def watch_changes(self, callback: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        """Call `callback` soon after any process moves the change counter; returns how to stop watching.

        None means this backend cannot push changes: callers poll `subscriptions_version` instead.
        """
        return None

    # deliveries ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim_due_deliveries(
        self, owner: str, now: float, limit: int, lease: float, skip: Collection[tuple[str, str]] = ()
    ) -> list[Delivery]:
        """Lease up to `limit` deliveries due at `now` whose subscription is Active, oldest due first.

        A claimed delivery is invisible to other claimers until `now + lease` or until it is completed,
        rescheduled or dead-lettered. Several nodes may claim concurrently without sharing a row.
        Deliveries of the `(topic, subscription)` pairs in `skip` are left alone (a worker skips endpoints
        that are busy or on probation, so they never crowd out healthy ones).
        """

    @abc.abstractmethod
    async def claim_ordered_deliveries(
        self, owner: str, now: float, limit: int, lease: float, skip: Collection[tuple[str, str]] = ()
    ) -> list[Delivery]:
        """As `claim_due_deliveries`, for deliveries with an ordering key: only the oldest pending one per key.

        A delivery is claimable when no pending delivery of the same subscription and key has an older event,
        so at most one per key is in flight and none overtakes an earlier one (`claim_due_deliveries` leaves
        them alone).
        """

    @abc.abstractmethod
    async def renew_leases(self, owner: str, ids: Sequence[int], until: float) -> int:
        """Extend to `until` the leases `owner` still holds on deliveries `ids`; returns how many it renewed."""

    async def complete_deliveries(self, ids: Sequence[int]) -> None:
        """Forget deliveries that succeeded."""
        await self.record_outcomes(ids, (), 0)

    @abc.abstractmethod
    async def record_outcomes(self, completed: Sequence[int], attempts: Sequence[AttemptRecord], keep: int) -> None:
        """`complete_deliveries(completed)` and `record_attempts(attempts, keep)` in one transaction: both or
        neither."""

    @abc.abstractmethod
    async def reschedule_deliveries(self, ids: Sequence[int], attempt: Attempt, next_attempt_at: float) -> None:
        """Record a failed attempt on each delivery and release it until `next_attempt_at`."""

    @abc.abstractmethod
    async def dead_letter_deliveries(
        self, ids: Sequence[int], reason: str, now: float, attempt: Attempt | None = None
    ) -> None:
        """Move deliveries to the dead-letter records, with the reason and the attempt that ended them, if any."""

    @abc.abstractmethod
    async def release_deliveries(self, topic: str, subscription: str, now: float) -> int:
        """Make a subscription's unleased deliveries scheduled after `now` due at `now`; returns how many."""

    @abc.abstractmethod
    async def count_pending_deliveries(self, topic: str | None = None, subscription: str | None = None) -> int:
        """Deliveries not yet completed or dead-lettered."""

    @abc.abstractmethod
    async def next_due_at(self, now: float) -> float | None:
        """When the earliest unleased pending delivery of an Active subscription is due, or None."""

    # dead letters ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def list_dead_letters(
        self, topic: str | None = None, subscription: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead-letter records, newest first."""

    @abc.abstractmethod
    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter:
        """One dead-letter record; `Missing` if absent."""

    @abc.abstractmethod
    async def redeliver_dead_letters(self, ids: Sequence[int], now: float) -> int:
        """Turn dead-letter records back into pending deliveries due at `now`; returns how many."""

    # documents -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_document(self, doc: Document, *, expect_version: int | None = None) -> Document:
        """Insert or replace a document, returning it with its new version.

        With `expect_version`, the write happens only if the stored version equals it (0: must not exist);
        otherwise `VersionConflict`.
        """

    @abc.abstractmethod
    async def write_change(
        self, documents: Sequence[DocumentWrite], events: Sequence[NewEvent], routes: Sequence[Route], now: float,
        lease: Lease | None = None,
    ) -> list[Delivery]:
        """Write documents, events and the events' deliveries in one transaction: all or nothing.

        A document not at its `expect_version` fails the whole change with `VersionConflict` (a delete of an
        absent document without one, with `Missing`): then nothing is written. Deliveries are due at `now`;
        `lease` and the result are `append_events`'.
        """

    @abc.abstractmethod
    async def get_document(self, collection: str, key: str) -> Document:
        """A document; `Missing` if absent."""

    @abc.abstractmethod
    async def list_documents(
        self, collection: str, after_key: str | None = None, limit: int = 100
    ) -> list[Document]:
        """Documents of a collection ordered by key, starting after `after_key`."""

    async def scan_documents(
        self, collection: str, prefix: str = "", *, after: str | None = None, batch: int = 100
    ) -> AsyncIterator[Document]:
        """Documents of a collection whose keys start with `prefix` (and sort after it, and after `after`), in key
        order, read `batch` at a time."""
        after = after or prefix
        while True:
            docs = await self.list_documents(collection, after_key=after, limit=batch)
            for doc in docs:
                if not doc.key.startswith(prefix):
                    return
                yield doc
            if len(docs) < batch:
                return
            after = docs[-1].key

    @abc.abstractmethod
    async def delete_document(self, collection: str, key: str) -> None:
        """Remove a document; `Missing` if absent."""

    # namespaces ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_namespace_resource(self, resource: NamespaceResource, *, create: bool) -> None:
        """Insert (`create`: `AlreadyExists` if present) or replace (`Missing` if absent) a namespace resource."""

    @abc.abstractmethod
    async def get_namespace_resource(self, namespace: str, topic: str = "", name: str = "") -> NamespaceResource:
        """One namespace resource; `Missing` if absent."""

    @abc.abstractmethod
    async def list_namespace_resources(self, namespace: str = "", topic: str = "") -> list[NamespaceResource]:
        """The children, by name: namespaces (no arguments), a namespace's topics, or a topic's subscriptions."""

    @abc.abstractmethod
    async def delete_namespace_resources(self, namespace: str, topic: str = "", name: str = "") -> None:
        """Remove a namespace resource and every resource beneath it; `Missing` if absent."""

    # queue subscriptions (pending deliveries consumed by pull) --------------------------------------------
    @abc.abstractmethod
    async def lock_events(
        self, topic: str, subscription: str, now: float, limit: int, lock_until: float, *,
        max_deliveries: int, published_after: float,
    ) -> list[LockedEvent]:
        """Lock up to `limit` available deliveries of a subscription, oldest first, each under a new token.

        Available means due and not locked (or its lock lapsed). In the same transaction, available
        deliveries already received `max_deliveries` times, or published at or before `published_after`,
        are dead-lettered (`MaxDeliveryCountExceeded`, `TimeToLiveExceeded`) instead. Concurrent callers,
        also on other nodes, never lock the same delivery at once.
        """

    @abc.abstractmethod
    async def settle_locks(
        self, topic: str, subscription: str, tokens: Sequence[str], action: str, now: float, *,
        until: float = 0.0, reason: str = "",
    ) -> dict[str, str]:
        """Apply `action` to the deliveries locked under `tokens`; map each token to its outcome.

        Outcomes: `LOCK_OK`, `LOCK_EXPIRED` (the lock lapsed at or before `now`), `LOCK_UNKNOWN`.
        Actions (`SETTLE_ACTIONS`): acknowledge (forget the delivery), release (unlock, available again at
        `until`), renew (lock until `until`), reject (dead-letter with `reason`).
        """

    # delivery attempts and the console's reads ----------------------------------------------------------
    async def record_attempts(self, records: Sequence[AttemptRecord], keep: int) -> None:
        """Append delivery attempts, then forget all but about the newest `keep` (the retention limit)."""
        await self.record_outcomes((), records, keep)

    @abc.abstractmethod
    async def list_attempts(self, event_seq: int) -> list[AttemptRecord]:
        """The recorded attempts to deliver one event, oldest first."""

    @abc.abstractmethod
    async def recent_attempts(self, topic: str, subscription: str, limit: int = 20) -> list[AttemptRecord]:
        """A subscription's latest recorded attempts, newest first."""

    @abc.abstractmethod
    async def event_by_seq(self, seq: int) -> StoredEvent:
        """The event stored under `seq`; `Missing` if absent."""

    @abc.abstractmethod
    async def search_events(self, query: EventQuery, limit: int = 50) -> list[StoredEvent]:
        """Events matching `query` (before `query.before_seq`, for paging), newest first."""

    @abc.abstractmethod
    async def events_after(self, seq: int, limit: int = 500) -> list[StoredEvent]:
        """Events stored after `seq`, oldest first (the console's live stream)."""

    @abc.abstractmethod
    async def event_deliveries(self, event_seq: int) -> list[Delivery]:
        """The pending deliveries of one event."""

    @abc.abstractmethod
    async def event_dead_letters(self, event_seq: int) -> list[DeadLetter]:
        """The dead-letter records of one event."""

    @abc.abstractmethod
    async def delivery_backlog(self) -> tuple[int, float | None]:
        """How many deliveries are pending, and when the oldest event among them was published."""
