"""Which side of concord a connector is on, so its errors name it: a source or a target.

A REST or SOAP source raises ``SourceError`` ("source 'erp', ..."), a CRM target
``PushError`` ("target 'crm', ..."); the token client of an OAuth flow raises the error of the
connector it serves, so a CRM's refused client secret is a target's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from concord.errors import PushError, SourceError

SideKind = Literal["source", "target"]


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

    def error(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        attempt: int | None = None,
        retriable: bool = False,
        auth: bool = False,
        body: Any = None,
    ) -> SourceError | PushError:
        """This side's error (``body``: the parsed error answer, if any, kept on it)."""
        if self.kind == "source":
            return SourceError(
                message,
                source=self.name,
                url=url,
                status=status,
                attempt=attempt,
                retriable=retriable,
                auth=auth,
                body=body,
            )
        return PushError(
            message,
            target=self.name,
            url=url,
            status=status,
            attempt=attempt,
            retriable=retriable,
            auth=auth,
            body=body,
        )
