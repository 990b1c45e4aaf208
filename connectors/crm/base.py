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
