"""The storage protocol every commgrid backend implements, and the records it moves.

Backends (`sqlite.py`, `postgres.py`) pass the same contract suite (`tests/store/test_contract.py`).
Driver errors never leave a backend: callers see `StoreError` subclasses.
Times are POSIX seconds (float) so that both backends compare them the same way.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from commgrid.errors import CommgridError, Conflict, NotFound


class StoreError(CommgridError):
    """The store failed."""


class StoreNotOpen(StoreError):
    """The store was used before `open()` or after `close()`."""


class AlreadyExists(StoreError, Conflict):
    """The record already exists."""


class Missing(StoreError, NotFound):
    """The record does not exist."""


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


@dataclass(slots=True)
class NewEvent:
    """An event about to be stored; `body` is its JSON envelope in the topic's input schema."""

    topic: str
    id: str
    type: str
    subject: str
    time: str
    body: bytes


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


@dataclass(slots=True)
class Subscription:
    """An event subscription; `properties` is Event Grid's ARM `properties` object (camelCase)."""

    topic: str
    name: str
    properties: dict[str, Any]
    status: str = "Active"  # see grid.subscriptions for the states
    created_at: float = 0.0
    updated_at: float = 0.0


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
class Document:
    """A small JSON document of domain state (identities, chat threads, ...), keyed by collection and key."""

    collection: str
    key: str
    value: dict[str, Any]
    version: int = 0


class Store(abc.ABC):
    """Durable state of one commgrid deployment. All methods are safe to call concurrently."""

    url: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish in-flight work and disconnect."""

    # settings --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_setting(self, key: str) -> str | None:
        """A deployment-wide setting (keys, secrets, resource names), or None."""

    @abc.abstractmethod
    async def set_setting(self, key: str, value: str, *, only_if_absent: bool = False) -> str:
        """Store a setting and return the value now stored (the existing one if `only_if_absent`)."""

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
    @abc.abstractmethod
    async def append_events(self, events: Sequence[NewEvent], routes: Sequence[Route], now: float) -> None:
        """Durably store events and their deliveries in one transaction: all or nothing.

        When this returns, the events survive a crash. Deliveries are due at `now`.
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
        """A counter that grows whenever any topic or subscription changes (for caches on every node)."""

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
    async def renew_leases(self, owner: str, ids: Sequence[int], until: float) -> int:
        """Extend to `until` the leases `owner` still holds on deliveries `ids`; returns how many it renewed."""

    @abc.abstractmethod
    async def complete_deliveries(self, ids: Sequence[int]) -> None:
        """Forget deliveries that succeeded."""

    @abc.abstractmethod
    async def reschedule_deliveries(self, ids: Sequence[int], attempt: Attempt, next_attempt_at: float) -> None:
        """Record a failed attempt on each delivery and release it until `next_attempt_at`."""

    @abc.abstractmethod
    async def dead_letter_deliveries(
        self, ids: Sequence[int], reason: str, now: float, attempt: Attempt | None = None
    ) -> None:
        """Move deliveries to the dead-letter records, with the reason and the attempt that ended them, if any."""

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
        otherwise `Conflict`.
        """

    @abc.abstractmethod
    async def get_document(self, collection: str, key: str) -> Document:
        """A document; `Missing` if absent."""

    @abc.abstractmethod
    async def list_documents(
        self, collection: str, after_key: str | None = None, limit: int = 100
    ) -> list[Document]:
        """Documents of a collection ordered by key, starting after `after_key`."""

    @abc.abstractmethod
    async def delete_document(self, collection: str, key: str) -> None:
        """Remove a document; `Missing` if absent."""
