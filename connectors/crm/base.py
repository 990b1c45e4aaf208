"""What every CRM target shares: auth styles, settings parsing, the kit's client, bisection.

Every target sends through the HTTP kit (``connectors.http``) on the target's side, so its
errors, its token endpoint's included, are ``PushError`` naming the target. A batch the CRM
refuses as a whole (400/413/422: one bad record poisons the call) is split in halves until each
bad record stands alone, so one bad record costs its own push, not its neighbours'. A refused
single record becomes a rejected outcome carrying the CRM's own message. ``CrmClient`` counts
the API calls a target makes (splits included, HTTP retries not) so the push report can be
compared with the plan's estimate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from concord.contracts import PushOutcome, PushRecord, TargetConfig
from concord.errors import ConfigError, PushError
from concord.redact import redact
from connectors.crm.salesforce_auth import SalesforceClientCredentials, SalesforceJwtBearer
from connectors.http import (
    ApiKeyAuth,
    AuthStyle,
    BasicAuth,
    BearerAuth,
    HttpClient,
    HttpResponse,
    HttpSettings,
    NoAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    Side,
)

CrmAuth = Annotated[
    NoAuth
    | BearerAuth
    | BasicAuth
    | ApiKeyAuth
    | OAuth2ClientCredentials
    | OAuth2RefreshToken
    | SalesforceClientCredentials
    | SalesforceJwtBearer,
    Field(discriminator="type"),
]
WHOLE_BATCH_REFUSED = frozenset({400, 413, 422})
S = TypeVar("S", bound=BaseModel)
T = TypeVar("T")


def parse_settings(model: type[S], config: TargetConfig) -> S:
    """Validate a target's settings; the error names ``targets.<name>.<key>``."""
    try:
        return model.model_validate(config.settings)
    except ValidationError as exc:
        raise ConfigError.from_validation(
            exc, prefix=("targets", config.name), model=model
        ) from None


class CrmClient:
    """The kit's HTTP client for one target (errors are ``PushError``), counting calls."""

    def __init__(
        self, name: str, base_url: str, auth: AuthStyle | None, http: HttpSettings
    ) -> None:
        self.name = name
        self.calls = 0
        self.http = HttpClient(Side.target(name), base_url, auth=auth, settings=http)

    def request(self, method: str, path: str, **kwargs: Any) -> HttpResponse:
        """One API call (the HTTP client renews a refreshable token once after a 401)."""
        self.calls += 1
        return self.http.request(method, path, **kwargs)

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()


def error_body(exc: PushError) -> Any:
    """The CRM's parsed error body kept on a ``PushError``, if any."""
    return exc.body


def is_call_failure(exc: PushError) -> bool:
    """Whether an error is about the call, not one record: retriable, or credentials refused."""
    return exc.retriable or exc.auth or exc.status in (401, 403)


def bisect(
    records: Sequence[PushRecord],
    send: Callable[[Sequence[PushRecord]], list[PushOutcome]],
    describe: Callable[[PushError], str],
) -> list[PushOutcome]:
    """Send a batch; when the CRM refuses it whole, split it until the bad records are alone."""
    if not records:
        return []
    try:
        return send(records)
    except PushError as exc:
        if exc.auth or exc.status not in WHOLE_BATCH_REFUSED:
            raise
        if len(records) == 1:
            return [PushOutcome(records[0].key, ok=False, error=redact(describe(exc)))]
    mid = len(records) // 2
    return bisect(records[:mid], send, describe) + bisect(records[mid:], send, describe)


_TOO_LARGE = re.compile(
    r"batch[^.]*(size|limit)|too (large|many)|exceed[s]?[^.]*(limit|max)|max[a-z]* (batch|input)",
    re.IGNORECASE,
)


def batch_too_large(exc: PushError) -> bool:
    """Whether the CRM refused a call for carrying too many records (not for a bad record)."""
    if exc.auth or exc.status not in WHOLE_BATCH_REFUSED:
        return False
    if exc.status == 413:
        return True
    body = error_body(exc)
    text = body.get("message") if isinstance(body, dict) else None
    return bool(_TOO_LARGE.search(str(text or exc.message)))


class BatchLimit:
    """The most records one call may carry for the rest of the run.

    It starts at the CRM's documented limit; a call refused as too large lowers it to half the
    refused size, so every later batch is split before it is sent, not refused and split again.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.lowered = 0

    def send(
        self,
        records: Sequence[PushRecord],
        send: Callable[[Sequence[PushRecord]], list[PushOutcome]],
        describe: Callable[[PushError], str],
    ) -> list[PushOutcome]:
        """Send ``records`` in calls of at most ``size``; a bad record is bisected out."""
        out: list[PushOutcome] = []
        start = 0
        while start < len(records):
            part = records[start : start + self.size]
            try:
                out += send(part)
            except PushError as exc:
                if len(part) > 1 and batch_too_large(exc):
                    self.size = max(1, len(part) // 2)
                    self.lowered += 1
                    continue
                if exc.auth or exc.status not in WHOLE_BATCH_REFUSED:
                    raise
                if len(part) == 1:
                    out.append(PushOutcome(part[0].key, ok=False, error=redact(describe(exc))))
                else:
                    mid = len(part) // 2
                    out += bisect(part[:mid], send, describe)
                    out += bisect(part[mid:], send, describe)
            start += len(part)
        return out


def chunks(records: Sequence[T], size: int) -> list[Sequence[T]]:
    """``records`` (or keys) in slices of at most ``size``."""
    return [records[i : i + size] for i in range(0, len(records), size)]


def jsonable(value: Any) -> Any:
    """A mapped value as JSON: Decimals become numbers, dates ISO text, enums their value."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent == 0
            else float(value)
        )
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
