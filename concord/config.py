"""The pipeline config (``concord.yaml``): sources, entities, targets, identity and run limits.

It is validated as a whole before any I/O: every error names the file, line and key. Secrets are
only ever references (``{env: NAME}`` or ``{connection: id}``); an inline secret is refused.
Plain strings may use ``${VAR}`` or ``${VAR:-default}`` for non-secret values such as URLs.
Connector-specific keys (pagination, auth style, WSDL, ...) stay in each section's ``settings``
and are checked by the connector's own ``validate`` as the config loads, so a typo in the third
source fails before the first one is pulled (and when Airflow parses the DAG).
"""

from __future__ import annotations

import logging
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from concord.contracts.registry import source_type, target_type
from concord.contracts.sections import EntityConfig, ShardSpec, SourceConfig, TargetConfig
from concord.errors import ConfigError, StoreError
from concord.overrides import load_overrides
from concord.secrets import SECRET_KEYS, SecretRef, inline_secret, note_reference
from concord.store.store import check_store_url
from concord.yamlfile import LoadedYaml, load_yaml

__all__ = [
    "EntityConfig",
    "IdentityConfig",
    "PipelineConfig",
    "ShardSpec",
    "SourceConfig",
    "TargetConfig",
    "absolute_paths",
    "load_config",
]
log = logging.getLogger("concord.config")

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MatchRuleType = Literal["crossref", "tax_id", "identifier", "email", "fuzzy_name", "probabilistic"]
Corroboration = Literal["postcode", "city", "phone", "email_domain"]
SurvivorshipStrategy = Literal[
    "original", "source_priority", "most_recent", "most_complete", "most_frequent"
]
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

    ``identifier`` links on the same *valid* identifier of any type (VAT, US EIN, DUNS, ...;
    ``tax_id`` only on VAT numbers). ``probabilistic`` scores blocked pairs with the
    Fellegi-Sunter model (``concord.identity.scoring``) and links those with a match
    probability of at least ``min_probability``; records in different countries need a match
    weight of ``cross_country_weight`` (docs/identity.md).
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
    min_probability: float = Field(default=0.9, gt=0, lt=1)
    cross_country_weight: float = Field(default=30.0)

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
    """How one golden field is chosen among a cluster's records (``sources``: highest first).

    ``original`` (the default) keeps the original record's value: source priority, then the
    oldest record, then the most complete value.
    """

    strategy: SurvivorshipStrategy = "original"
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
        """The rule for one golden field, with the default source ranking filled in."""
        rule = self.fields.get(name, self.default)
        if rule.strategy in ("source_priority", "original") and not rule.sources:
            return FieldSurvivorship(strategy=rule.strategy, sources=self.source_priority)
        return rule


class ChurnConfig(_Strict):
    """MBG/NBD churn model settings: below ``min_repeat_customers`` the recency heuristic is used.

    The fitted parameters score the base for ``refit_days`` business days before the model is
    fitted again (0: every build), like the identity model's ``retrain_growth``.
    """

    min_repeat_customers: int = Field(default=30, ge=1)
    period_days: int = Field(default=7, ge=1)
    refit_days: int = Field(default=7, ge=0)


def _default_rules() -> list[MatchRuleConfig]:
    return [MatchRuleConfig.model_validate(n) for n in ("crossref", "identifier", "probabilistic")]


class ModelConfig(_Strict):
    """How the probabilistic model learns: EM only on a base of ``min_training_records``.

    Below that the model samples u from the data and keeps the shipped m priors. A stored model
    is reused until the base has grown by ``retrain_growth`` (a fraction) or ``concord identity
    train`` runs.
    """

    min_training_records: int = Field(default=2000, ge=10)
    retrain_growth: float = Field(default=0.2, ge=0)


class GuardConfig(_Strict):
    """The blast-radius guard: clusters quarantined for review instead of pushed.

    A cluster larger than ``max_cluster_size`` records, or every merging cluster when a run
    would change more than ``max_changed_ids_pct`` percent of the existing golden ids, waits in
    ``concord identity review``.
    """

    max_cluster_size: int = Field(default=25, ge=2)
    max_changed_ids_pct: float = Field(default=5.0, ge=0, le=100)
    min_prior_ids: int = Field(default=200, ge=0)


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
    overrides: Path | None = None
    max_block_size: int = Field(default=200, ge=2)
    model: ModelConfig = Field(default_factory=ModelConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    survivorship: SurvivorshipConfig = Field(default_factory=SurvivorshipConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)

    @model_validator(mode="before")
    @classmethod
    def _retired_keys(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name_threshold" in value:
            log.warning(
                "identity.name_threshold never had an effect and is ignored; the fuzzy_name "
                "rule's own threshold decides (identity.rules)"
            )
            value = {k: v for k, v in value.items() if k != "name_threshold"}
        return value

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


class FxConfig(_Strict):
    """Where dated exchange rates come from besides the ERPs' own (``exchange_rates`` entities).

    ``rates_csv`` is a file with the columns ``date,currency,rate``: from that date one unit of
    the currency is worth ``rate`` units of the base currency.
    """

    rates_csv: Path | None = None


class Customer360Config(_Strict):
    """How the build-360 stage works.

    ``incremental`` recomputes only the customers whose inputs changed or whose figures crossed
    a date boundary; ``False`` rebuilds every row from the documents every night.
    """

    incremental: bool = True


class PushGateConfig(_Strict):
    """When to hold the push: the ERP receivable check differs by more than this in total.

    ``receivable_tolerance`` is in the base currency; None (the default) never holds the push.
    """

    receivable_tolerance: Decimal | None = Field(default=None, ge=0)


class PipelineConfig(_Strict):
    """The whole ``concord.yaml``: store, money, limits, sources, targets and identity."""

    path: Path = Field(default=Path("concord.yaml"), exclude=True)  # where it was loaded from
    store_url: str = "sqlite:///var/concord.db"
    base_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    timezone: str = Field(
        default="UTC", description="The company's time zone: business dates (due, overdue) use it"
    )
    fx_rates: dict[str, Decimal] = Field(default_factory=dict)
    fx: FxConfig = Field(default_factory=FxConfig)
    push_gate: PushGateConfig = Field(default_factory=PushGateConfig)
    customer360: Customer360Config = Field(default_factory=Customer360Config)
    reject_ratio: float = Field(default=0.1, ge=0, le=1)
    reject_min_count: int = Field(default=5, ge=1)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    extract_concurrency: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Source entities a sync pulls at once (each source within its own rate "
        "limit); 1 pulls them one after the other",
    )
    extract_commit_records: int = Field(
        default=10000,
        ge=1,
        le=1_000_000,
        description="Records the extract commits in one transaction, with the checkpoint of the "
        "batch's last page (a crash pulls at most these again); 1 commits every page",
    )
    map_workers: int = Field(
        default=2,
        ge=0,
        le=16,
        description="Worker processes that map a big entity's batches (one of at least 20,000 "
        "pending records) while the stage writes the results; 0 maps in the stage's own process",
    )
    schedule: str = "0 2 * * *"
    sources: dict[str, SourceConfig]
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)

    @field_validator("store_url")
    @classmethod
    def _supported_store(cls, v: str) -> str:
        try:
            check_store_url(v)
        except StoreError as exc:
            raise ValueError(exc.message) from None
        return v

    @field_validator("fx_rates")
    @classmethod
    def _rates_positive(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, rate in v.items():
            if not re.fullmatch(r"[A-Z]{3}", code) or rate <= 0:
                raise ValueError(f"fx rate {code}={rate}: need an ISO currency and a rate > 0")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name: Europe/Berlin)") from None
        return v

    def resolve_path(self, p: Path) -> Path:
        """A path in the config is relative to the config file's folder."""
        return p if p.is_absolute() else (self.path.parent / p)


def absolute_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Config data (as parsed YAML) with every file it names made absolute against ``base``.

    For a copy of a config written to another folder (a test, the scale-out demo): paths in a
    config are relative to the config file, so without this the copy would point nowhere.
    """

    def fix(section: dict[str, Any], key: str) -> None:
        value = section.get(key)
        if (
            isinstance(value, str)
            and value
            and "://" not in value
            and not Path(value).is_absolute()
        ):
            section[key] = str(base / value)

    for source in (data.get("sources") or {}).values():
        for entity in (source.get("entities") or {}).values():
            fix(entity, "mapping")
            fix(entity, "wsdl")
    for target in (data.get("targets") or {}).values():
        fix(target, "mapping")
        fix(target, "person_mapping")
    if isinstance(data.get("identity"), dict):
        fix(data["identity"], "overrides")
    return data


def _interpolate(value: Any, loc: tuple[str | int, ...], doc: LoadedYaml) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            env = os.environ.get(m.group(1))
            if env is not None:
                return env
            if m.group(2) is not None:
                return m.group(2)
            raise ConfigError(
                f"environment variable {m.group(1)} is not set",
                file=str(doc.path),
                line=doc.line(loc),
                key=".".join(map(str, loc)),
            )

        return _ENV_VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), doc) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), doc) for i, v in enumerate(value)]
    return value


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(map(str, loc))


def _refuse_inline_secrets(value: Any, loc: tuple[str | int, ...], doc: LoadedYaml) -> None:
    """Refuse every secret written by value (``concord.secrets``); references are checked."""
    if isinstance(value, dict):
        parent = str(loc[-1]) if loc else None
        for k, v in value.items():
            where = (*loc, k)
            secret_key = str(k).lower() in SECRET_KEYS
            problem = inline_secret(str(k), v, parent=parent)
            if secret_key and not isinstance(v, dict) and v not in (None, ""):
                problem = "secrets must be references such as {env: NAME} or {connection: conn_id}"
            if problem:
                raise ConfigError(
                    f"{problem}, not values in the file (see docs/security.md)",
                    file=str(doc.path),
                    line=doc.line(where),
                    key=_dotted(where),
                )
            if secret_key and isinstance(v, dict):
                try:
                    ref = SecretRef.model_validate(v)
                except ValidationError as exc:
                    raise ConfigError.from_validation(
                        exc, prefix=where, file=str(doc.path), line_of=doc.line, model=SecretRef
                    ) from None
                note_reference(ref, file=str(doc.path), line=doc.line(where), key=_dotted(where))
                continue
            _refuse_inline_secrets(v, where, doc)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_inline_secrets(v, (*loc, i), doc)
    elif isinstance(value, str) and (found := inline_secret("", value)):
        raise ConfigError(
            f"{found}, not values in the file (see docs/security.md)",
            file=str(doc.path),
            line=doc.line(loc),
            key=".".join(map(str, loc)),
        )


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load and validate ``concord.yaml``, the files it names and every connector's settings.

    Mapping files must exist, the overrides file must parse, and every enabled source and
    target connector checks its own settings; any error names file, line and key.
    """
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
        raise ConfigError.from_validation(
            exc, file=str(path), line_of=doc.line, model=PipelineConfig
        ) from None
    for sname, scfg in config.sources.items():
        scfg.name = sname
    for tname, tcfg in config.targets.items():
        tcfg.name = tname
    _check_files(config, doc)
    if config.identity.overrides is not None:
        load_overrides(config.resolve_path(config.identity.overrides))
    _check_connectors(config, doc)
    return config


def _check_files(config: PipelineConfig, doc: LoadedYaml) -> None:
    """Every mapping and the overrides file the config names exists."""
    files: list[tuple[tuple[str | int, ...], Path, str]] = []
    if config.identity.overrides is not None:
        files.append((("identity", "overrides"), config.identity.overrides, "identity overrides"))
    for sname, scfg in config.sources.items():
        for ename, ecfg in scfg.entities.items():
            files.append(
                (("sources", sname, "entities", ename, "mapping"), ecfg.mapping, "mapping")
            )
    if config.fx.rates_csv is not None:
        files.append((("fx", "rates_csv"), config.fx.rates_csv, "exchange rates"))
    for tname, tcfg in config.targets.items():
        files.append((("targets", tname, "mapping"), tcfg.mapping, "mapping"))
        if tcfg.person_mapping is not None:
            files.append((("targets", tname, "person_mapping"), tcfg.person_mapping, "mapping"))
    for loc, file, what in files:
        if not config.resolve_path(file).is_file():
            raise ConfigError(
                f"{what} file not found: {file}",
                file=str(doc.path),
                line=doc.line(loc),
                key=".".join(map(str, loc)),
            )


def _check_connectors(config: PipelineConfig, doc: LoadedYaml) -> None:
    """Each enabled source's and target's connector validates its own settings (no I/O)."""
    for kind, items in (("sources", config.sources), ("targets", config.targets)):
        for name, item in items.items():
            if not item.enabled:
                continue
            try:
                if isinstance(item, SourceConfig):
                    _check_derived(item)
                    source_type(item.type).validate(item.pulled())
                else:
                    target_type(item.type).validate(item)
            except ConfigError as exc:
                if exc.key is None:
                    exc = ConfigError(exc.reason, key=f"{kind}.{name}.type")
                raise _with_core_keys(exc).located(str(doc.path), doc.line) from None


def _check_derived(source: SourceConfig) -> None:
    """``derived_from`` names another entity of the same source, itself pulled."""
    for name, ecfg in source.entities.items():
        parent = ecfg.derived_from
        if parent is None:
            continue
        key = f"sources.{source.name}.entities.{name}.derived_from"
        if parent not in source.entities:
            known = ", ".join(sorted(source.entities))
            raise ConfigError(f"no entity '{parent}' in this source (entities: {known})", key=key)
        if source.entities[parent].derived_from is not None or parent == name:
            raise ConfigError(f"'{parent}' is derived itself: derive from a pulled entity", key=key)


def _with_core_keys(exc: ConfigError) -> ConfigError:
    """A connector's unknown-key error, also suggesting the keys core reads in that section."""
    parts = (exc.key or "").split(".")
    core: type[BaseModel]
    if parts[0] == "sources" and len(parts) == 5 and parts[2] == "entities":
        core = EntityConfig
    elif parts[0] == "sources" and len(parts) == 3:
        core = SourceConfig
    elif parts[0] == "targets" and len(parts) == 3:
        core = TargetConfig
    else:
        return exc
    return exc.with_known([k for k, f in core.model_fields.items() if not f.exclude])
