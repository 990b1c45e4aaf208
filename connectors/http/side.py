"""Which side of concord a connector is on, so its errors name it: a source or a target.

A REST or SOAP source raises ``SourceError`` ("source 'erp', ..."), a CRM target
``PushError`` ("target 'crm', ..."); the token client of an OAuth flow raises the error of the
connector it serves, so a CRM's refused client secret is a target's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from concord.errors import PushError, SourceError

SideKind = Literal["source", "target"]


class ErrorDetails(TypedDict, total=False):
    """What an error of either side may say besides its message."""

    url: str | None
    status: int | None
    attempt: int | None
    retriable: bool
    auth: bool
    body: Any


@dataclass(frozen=True)
class Side:
    """A connector's side and name."""

    kind: SideKind
    name: str

    @classmethod
    def source(cls, name: str) -> Side:
        """The side of source ``name``."""
        return cls("source", name)

    @classmethod
    def target(cls, name: str) -> Side:
        """The side of target ``name``."""
        return cls("target", name)

    def error(self, message: str, **details: Unpack[ErrorDetails]) -> SourceError | PushError:
        """This side's error: ``SourceError`` naming the source, or ``PushError`` the target."""
        if self.kind == "source":
            return SourceError(message, source=self.name, **details)
        return PushError(message, target=self.name, **details)
