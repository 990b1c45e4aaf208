"""``Reject``: one record a stage could not take, kept with its reason and payload.

Extract (a record without an id), map (the mapping or the canonical model refused it) and push
(the outbound mapping or the CRM refused it, or a merge failed) all store the same shape, so
``concord rejects`` lists them alike and nothing is lost: the payload is kept as pulled, and
``location`` names the mapping file and line of the field that failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

RejectStage = Literal["extract", "map", "push"]


@dataclass(frozen=True, slots=True)
class Reject:
    """A refused record: where (stage, source or target, entity, id, field) and why."""

    stage: RejectStage
    source: str
    """The source name, or the target name for a push reject."""
    entity: str
    source_id: str | None
    reason: str
    field: str | None = None
    location: str | None = None
    """``file:line`` of the mapping field that refused the record, when a mapping did."""
    payload: bytes | None = None

    def row(self, run_id: str) -> dict[str, Any]:
        """The ``rejects`` table row for this reject, recorded by ``run_id``."""
        return {"run_id": run_id, **asdict(self)}
