"""HubSpot CRM v3 target: batch upsert of companies or contacts by a unique property.

At most 100 inputs a call, every property value a string (HubSpot's rules). A batch rejected as a
whole with a 400 is split in halves until the bad records are found, so one bad record costs its
own push, not its 99 neighbours'. 429 and ``Retry-After`` are honoured by the shared HTTP client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from concord.config import TargetConfig
from concord.contracts import PushOutcome, PushRecord
from concord.errors import ConcordError, ConfigError, PushError
from connectors.auth import AuthConfig, NoAuth
from connectors.http import HttpClient, HttpSettings


class HubSpotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(default="https://api.hubapi.com", pattern=r"^https?://")
    auth: AuthConfig = Field(default_factory=NoAuth)
    http: HttpSettings = Field(default_factory=HttpSettings)
    object_type: Literal["companies", "contacts"] = "companies"
    id_property: str = "concord_id"


class HubSpotTarget:
    """A ``Target`` writing to HubSpot's batch upsert endpoint."""

    max_batch = 100

    def __init__(self, name: str, settings: HubSpotSettings) -> None:
        self.name = name
        self.settings = settings
        self.client = HttpClient(
            name, settings.base_url, auth=settings.auth, settings=settings.http, error=self._error
        )

    @classmethod
    def from_config(cls, config: TargetConfig) -> HubSpotTarget:
        try:
            return cls(config.name, HubSpotSettings.model_validate(config.settings))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                err["msg"], key=".".join(["targets", config.name, *map(str, err["loc"])])
            ) from None

    def _error(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        attempt: int | None = None,
        retriable: bool = False,
        body: Any = None,
    ) -> ConcordError:
        err = PushError(message, target=self.name, url=url, status=status, retriable=retriable)
        err.body = body  # type: ignore[attr-defined]
        return err

    def close(self) -> None:
        self.client.close()

    def push(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        if not records:
            return []
        if len(records) > self.max_batch:
            out: list[PushOutcome] = []
            for i in range(0, len(records), self.max_batch):
                out.extend(self.push(records[i : i + self.max_batch]))
            return out
        path = f"/crm/v3/objects/{self.settings.object_type}/batch/upsert"
        idp = self.settings.id_property
        body = {
            "inputs": [
                {"id": r.key, "idProperty": idp, "properties": {**r.properties, idp: r.key}}
                for r in records
            ]
        }
        try:
            resp = self.client.request("POST", path, json=body)
        except PushError as exc:
            if exc.status == 400 and len(records) > 1:
                mid = len(records) // 2
                return self.push(records[:mid]) + self.push(records[mid:])
            if exc.status == 400:
                return [PushOutcome(records[0].key, ok=False, error=exc.message)]
            raise
        results = resp.data.get("results", []) if isinstance(resp.data, dict) else []
        by_key: dict[str, PushOutcome] = {}
        for res in results:
            key = (res.get("properties") or {}).get(idp)
            if key is not None:
                by_key[str(key)] = PushOutcome(str(key), ok=True, remote_id=str(res.get("id")))
        for err in resp.data.get("errors", []) if isinstance(resp.data, dict) else []:
            for key in (err.get("context") or {}).get("ids", []) or []:
                by_key[str(key)] = PushOutcome(
                    str(key), ok=False, error=str(err.get("message", "rejected"))
                )
        return [
            by_key.get(r.key) or PushOutcome(r.key, ok=False, error="missing in response")
            for r in records
        ]
