"""The pipeline config (``concord.yaml``): sources, entities, targets, identity and run limits.

It is validated as a whole before any I/O: every error names the file, line and key. Secrets are
only ever references (``{env: NAME}`` or ``{connection: id}``); an inline secret is refused.
Plain strings may use ``${VAR}`` or ``${VAR:-default}`` for non-secret values such as URLs.
Connector-specific keys (pagination, auth style, WSDL, ...) stay in ``settings`` and are checked
by the connector's own model when it is built.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from concord.errors import ConfigError
from concord.secrets import SecretRef
from concord.yamlfile import LoadedYaml, load_yaml

SECRET_KEYS = {
    "password",
    "token",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "key",
    "private_key",
    "access_token",
    "refresh_token",
}
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntityConfig(BaseModel):
    """One entity pulled from a source: its mapping file and incremental cursor."""

    model_config = ConfigDict(extra="allow")

    mapping: Path
    id_field: str = "id"
    cursor_field: str | None = "updated_at"
    full_refresh: bool = False
    enabled: bool = True

    @property
    def settings(self) -> dict[str, Any]:
        """Connector-specific keys of this entity (path, operation, records path, ...)."""
        return dict(self.model_extra or {})


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = ""
    type: str
    entities: dict[str, EntityConfig]
    enabled: bool = True
    pool: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TargetConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = ""
    type: str
    mapping: Path
    person_mapping: Path | None = Field(
        default=None, description="Outbound mapping for customers that are persons (contacts)."
    )
    enabled: bool = True
    batch_size: int = Field(default=100, ge=1, le=1000)
    reject_ratio: float | None = Field(default=None, ge=0, le=1)
    pool: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


MatchRuleType = Literal["crossref", "tax_id", "email", "fuzzy_name"]
Corroboration = Literal["postcode", "city", "phone", "email_domain"]
SurvivorshipStrategy = Literal["source_priority", "most_recent", "most_complete", "most_frequent"]
GoldenField = Literal["name", "email", "phone", "address", "tax_id"]


CORROBORATION_WEIGHTS: dict[Corroboration, float] = {
    "postcode": 1.0,
    "city": 0.5,
    "phone": 2.0,
    "email_domain": 1.0,
}
"""Default evidence weight of each corroborating field: a shared phone counts double, a shared
city (many companies per city) half."""


def _all_corroborations() -> dict[Corroboration, float]:
    return dict(CORROBORATION_WEIGHTS)


class MatchRuleConfig(_Strict):
    """One matching rule; a bare string in YAML (``email``) names a rule of that type.

    Deterministic rules (``crossref``, ``tax_id``, ``email``) link on equal normalised keys with
    score 1.0. ``fuzzy_name`` compares legal-form-stripped names with rapidfuzz inside blocks and
    links when the whole name reaches ``threshold``, its distinctive words (those not common in
    the customer base) reach ``distinct_threshold``, and the weights of the agreeing
    ``corroborate`` fields sum to at least ``min_corroboration`` (``person_min_corroboration``
    for private persons). ``corroborate`` is a list of fields or a mapping field -> weight.
    Identical normalised names that contain a distinctive word add ``unique_name_weight``
    (Splink's term-frequency idea: a rare name agreeing exactly is evidence in itself).
    """

    name: str
    type: MatchRuleType
    threshold: float = Field(default=88.0, ge=0, le=100)
    distinct_threshold: float = Field(default=80.0, ge=0, le=100)
    corroborate: dict[Corroboration, float] = Field(default_factory=_all_corroborations)
    unique_name_weight: float = Field(default=1.0, ge=0)
    min_corroboration: float = Field(default=1.0, ge=0)
    person_min_corroboration: float = Field(default=1.5, ge=0)
    same_country: bool = True

    @field_validator("corroborate", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {f: CORROBORATION_WEIGHTS.get(f, 1.0) for f in value}
        return value

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value, "type": value}
        if isinstance(value, dict) and "name" in value and "type" not in value:
            return {**value, "type": value["name"]}
        if isinstance(value, dict) and "type" in value and "name" not in value:
            return {**value, "name": value["type"]}
        return value


class FieldSurvivorship(_Strict):
    """How one golden field is chosen among a cluster's records (``sources``: highest first)."""

    strategy: SurvivorshipStrategy = "most_recent"
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"strategy": value} if isinstance(value, str) else value


class SurvivorshipConfig(_Strict):
    """Survivorship per golden field; ``source_priority`` is the default ranking of sources."""

    default: FieldSurvivorship = Field(default_factory=FieldSurvivorship)
    source_priority: list[str] = Field(default_factory=list)
    fields: dict[GoldenField, FieldSurvivorship] = Field(default_factory=dict)

    def for_field(self, name: GoldenField) -> FieldSurvivorship:
        rule = self.fields.get(name, self.default)
        if rule.strategy == "source_priority" and not rule.sources:
            return FieldSurvivorship(strategy="source_priority", sources=self.source_priority)
        return rule


class ChurnConfig(_Strict):
    """BG/NBD churn model settings: below ``min_repeat_customers`` the recency heuristic is used."""

    min_repeat_customers: int = Field(default=30, ge=1)
    period_days: int = Field(default=7, ge=1)


def _default_rules() -> list[MatchRuleConfig]:
    return [MatchRuleConfig.model_validate(n) for n in ("crossref", "tax_id", "email")]


class IdentityConfig(_Strict):
    """Which rules link records into one customer, survivorship, overrides and churn settings."""

    rules: list[MatchRuleConfig] = Field(default_factory=_default_rules)
    free_mail_domains: list[str] = Field(
        default_factory=lambda: [
            "gmail.com",
            "googlemail.com",
            "yahoo.com",
            "hotmail.com",
            "outlook.com",
            "live.com",
            "icloud.com",
            "gmx.de",
            "gmx.net",
            "web.de",
            "orange.fr",
            "aol.com",
            "proton.me",
        ]
    )
    name_threshold: float = Field(default=92.0, ge=0, le=100)
    overrides: Path | None = None
    max_block_size: int = Field(default=200, ge=2)
    survivorship: SurvivorshipConfig = Field(default_factory=SurvivorshipConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)

    @model_validator(mode="after")
    def _unique_rule_names(self) -> IdentityConfig:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"identity rule names must be unique, repeated: {', '.join(dupes)}")
        return self

    def rule(self, rule_type: str) -> MatchRuleConfig | None:
        """The first configured rule of a type, or None when that type is not enabled."""
        return next((r for r in self.rules if r.type == rule_type), None)


class PipelineConfig(_Strict):
    path: Path = Path("concord.yaml")
    store_url: str = "sqlite:///var/concord.db"
    base_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    fx_rates: dict[str, Decimal] = Field(default_factory=dict)
    reject_ratio: float = Field(default=0.1, ge=0, le=1)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    schedule: str = "0 2 * * *"
    sources: dict[str, SourceConfig]
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)

    @field_validator("fx_rates")
    @classmethod
    def _rates_positive(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, rate in v.items():
            if not re.fullmatch(r"[A-Z]{3}", code) or rate <= 0:
                raise ValueError(f"fx rate {code}={rate}: need an ISO currency and a rate > 0")
        return v

    def resolve_path(self, p: Path) -> Path:
        """A path in the config is relative to the config file's folder."""
        return p if p.is_absolute() else (self.path.parent / p)


def _interpolate(value: Any, loc: tuple[str | int, ...], doc: LoadedYaml) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            env = os.environ.get(m.group(1))
            if env is not None:
                return env
            if m.group(2) is not None:
                return m.group(2)
            line = (doc.locate(loc) or (None, None))[0]
            raise ConfigError(
                f"environment variable {m.group(1)} is not set",
                file=str(doc.path),
                line=line,
                key=".".join(map(str, loc)),
            )

        return _ENV_VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), doc) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), doc) for i, v in enumerate(value)]
    return value


def _refuse_inline_secrets(value: Any, loc: tuple[str | int, ...], doc: LoadedYaml) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).lower() in SECRET_KEYS and not isinstance(v, dict) and v not in (None, ""):
                line = (doc.locate((*loc, k)) or (None, None))[0]
                raise ConfigError(
                    "secrets must be references such as {env: NAME} or {connection: conn_id}, "
                    "not values in the file",
                    file=str(doc.path),
                    line=line,
                    key=".".join(map(str, (*loc, k))),
                )
            if str(k).lower() in SECRET_KEYS and isinstance(v, dict):
                try:
                    SecretRef.model_validate(v)
                except ValidationError as exc:
                    line = (doc.locate((*loc, k)) or (None, None))[0]
                    raise ConfigError(
                        exc.errors()[0]["msg"],
                        file=str(doc.path),
                        line=line,
                        key=".".join(map(str, (*loc, k))),
                    ) from None
                continue
            _refuse_inline_secrets(v, (*loc, k), doc)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_inline_secrets(v, (*loc, i), doc)


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load and validate ``concord.yaml`` and every mapping path it names."""
    path = Path(path)
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError("the config must be a mapping of keys", file=str(path), line=1)
    _refuse_inline_secrets(doc.data, (), doc)
    data = _interpolate(doc.data, (), doc)
    if overrides:
        data.update(overrides)
    data["path"] = path
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = (doc.locate(loc) or (None, None))[0]
        raise ConfigError(
            err["msg"], file=str(path), line=line, key=".".join(map(str, loc))
        ) from None
    overrides_file = config.identity.overrides
    if overrides_file is not None and not config.resolve_path(overrides_file).is_file():
        line = (doc.locate(("identity", "overrides")) or (None, None))[0]
        raise ConfigError(
            f"identity overrides file not found: {overrides_file}",
            file=str(path),
            line=line,
            key="identity.overrides",
        )
    for kind, items in (("sources", config.sources), ("targets", config.targets)):
        for name, item in items.items():
            item.name = name
            mappings: list[tuple[tuple[str | int, ...], Path]] = []
            if isinstance(item, SourceConfig):
                mappings = [
                    ((kind, name, "entities", e, "mapping"), ec.mapping)
                    for e, ec in item.entities.items()
                ]
            elif isinstance(item, TargetConfig):
                mappings = [((kind, name, "mapping"), item.mapping)]
                if item.person_mapping is not None:
                    mappings.append(((kind, name, "person_mapping"), item.person_mapping))
            for loc, mapping in mappings:
                if not config.resolve_path(mapping).is_file():
                    line = (doc.locate(loc) or (None, None))[0]
                    raise ConfigError(
                        f"mapping file not found: {mapping}",
                        file=str(path),
                        line=line,
                        key=".".join(map(str, loc)),
                    )
    return config


def parse_time(value: str) -> datetime:
    """Parse an ISO-8601 time given on the command line or in a watermark (UTC if naive)."""

    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
