"""The target contract: what the push stage asks of a connector that writes to a CRM.

A target type (a class named in ``TARGET_TYPES`` or by ``module:Class``) checks its config
section when the config loads and answers the questions a push plan asks without building a
target (so no secret is resolved for ``concord push --dry-run``): its batch limits and what a
merge becomes in the CRM, and how many calls it costs. A built ``Target`` upserts
``PushRecord``s and returns exactly one ``PushOutcome`` per record, in order: a record the CRM
refuses is an outcome with ``ok=False`` and the CRM's message, never an exception.

Capabilities only some targets have are separate small ``runtime_checkable`` protocols the push
asks for with ``isinstance``: ``MergingTarget`` resolves identity merges (``Supersession``) in the
CRM; ``ReadingTarget`` reads the CRM's records back by concord id (``RemoteRecord``), which
``concord push --resync`` compares with what concord would send; ``PropertyTarget`` checks and
creates the custom properties the outbound mapping writes (``concord crm setup``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from concord.contracts.sections import TargetConfig

ObjectKind = Literal["company", "person"]
"""What kind of CRM object a customer becomes: companies, or contacts for private persons."""


@dataclass(slots=True)
class PushRecord:
    """One customer to send: its concord id, the mapped properties and its object kind."""

    key: str
    properties: dict[str, Any]
    object_type: ObjectKind = "company"
    remote_id: str | None = None
    clear: frozenset[str] = frozenset()
    """Properties sent empty on purpose, to clear them (a retirement mark): a target that
    leaves empty values out (HubSpot ``on_null: keep``) sends these anyway."""


@dataclass(slots=True)
class PushOutcome:
    """What the target said about one record (or one merge, keyed by the absorbed customer)."""

    key: str
    ok: bool
    remote_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Supersession:
    """A merged-away customer whose target record must go into (or point at) its survivor."""

    absorbed: str
    survivor: str
    object_type: ObjectKind
    absorbed_remote_id: str | None
    survivor_remote_id: str | None
    absorbed_in_target: bool = True
    survivor_in_target: bool = True
    prior_attempts: int = 0
    survivor_object_type: ObjectKind | None = None

    @property
    def remote(self) -> bool:
        """The absorbed customer exists in the target (otherwise only the local state changes)."""
        return self.absorbed_in_target


@runtime_checkable
class Target(Protocol):
    """A built target: upserts batches of records, one outcome per record."""

    name: str

    @property
    def calls(self) -> int:
        """API calls made so far (batch splits included, HTTP retries not)."""
        ...

    def push(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Upsert ``records``; return one outcome per record in the same order.

        A per-record refusal is an outcome; only a failure of the whole call (auth, the CRM
        down after retries) raises ``PushError``.
        """
        ...

    def close(self) -> None:
        """Release connections; the target is not used afterwards."""
        ...


@runtime_checkable
class MergingTarget(Protocol):
    """A target that can resolve identity merges in the CRM."""

    def supersede(self, items: Sequence[Supersession]) -> list[PushOutcome]:
        """Merge, mark or delete each absorbed record as the target documents.

        One outcome per item, keyed by the absorbed customer; an already merged pair counts as
        done.
        """
        ...


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """What the CRM holds for one customer, read back by its concord id."""

    key: str
    """The concord id (the value of the target's id property or external id field)."""
    object_type: ObjectKind
    remote_id: str | None
    properties: dict[str, Any]


@runtime_checkable
class ArchivingTarget(Protocol):
    """A target that can archive records: customers no longer customers in any ERP.

    Used when the target's ``retire`` is ``archive`` (HubSpot: the object is archived, as its
    UI's delete does, and can be restored).
    """

    def archive(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Archive each record (by ``remote_id``); one outcome per record, in order."""
        ...


@runtime_checkable
class ReadingTarget(Protocol):
    """A target that can read its records back by concord id (for a resync)."""

    def read(
        self, object_type: ObjectKind, keys: Sequence[str], properties: Sequence[str]
    ) -> list[RemoteRecord]:
        """The records the CRM holds now for ``keys``, with at least ``properties``.

        Found by the target's id property or external id, in batches the target chooses; a key
        the CRM does not hold (never pushed, deleted, archived) is simply absent from the answer.
        Only a failure of a whole call raises ``PushError``.
        """
        ...


PropertyType = Literal["string", "number", "date", "datetime", "bool"]


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """A property the outbound mapping writes, as the CRM should hold it."""

    name: str
    label: str
    type: PropertyType
    object_type: ObjectKind = "company"
    unique: bool = False
    """The id property: unique values (HubSpot ``hasUniqueValue``, a Salesforce External ID)."""


PropertyStateName = Literal["exists", "missing", "differs", "created", "standard"]


@dataclass(frozen=True, slots=True)
class PropertyState:
    """What the CRM holds for one ``PropertySpec``: exists, missing, differs (how), created."""

    spec: PropertySpec
    state: PropertyStateName
    detail: str = ""


@runtime_checkable
class PropertyTarget(Protocol):
    """A target that can check (and create) the custom properties concord writes."""

    def check_properties(
        self, specs: Sequence[PropertySpec], *, create: bool
    ) -> list[PropertyState]:
        """One state per spec, in order; ``create`` creates the missing ones (and their group).

        Only a failure of a whole call raises ``PushError``.
        """
        ...


class TargetType(Protocol):
    """A target connector class: checks its section, plans batches and merges, builds targets."""

    max_batch: int
    """The most records the CRM takes in one call."""
    default_batch: int
    """Records a call when the config does not set ``batch_size``."""

    def validate(self, config: TargetConfig) -> None:
        """Raise ``ConfigError`` naming the key of the first bad setting; no I/O."""
        ...

    def from_config(self, config: TargetConfig) -> Target:
        """Build the target (secrets are resolved when first needed)."""
        ...

    def merge_action(self, config: TargetConfig) -> str:
        """What a merge becomes in this CRM (``merge``, ``mark``, ``delete``)."""
        ...

    def merge_calls(self, config: TargetConfig, merges: int) -> int:
        """API calls ``merges`` remote merges of one object kind cost."""
        ...
