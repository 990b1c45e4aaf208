"""Probabilistic scoring (Fellegi-Sunter) of candidate pairs with Splink on DuckDB.

Two models, one for companies and one for private persons (persons are compared by forename
and surname, companies by their legal-form-stripped name), each a list of field comparisons
with levels (exact, fuzzy bands, missing). Every level has an m probability (how often true
matches land there) and a u probability (how often non-matches do); a pair's match weight is
the sum of log2(m/u) over its fields plus the prior, and a term-frequency adjustment makes an
exact match on a common value (a frequent surname, a dense postcode) weigh less than on a rare
one.

``train`` estimates u by random sampling and m by expectation maximisation on blocked pairs
when the base is large enough (``min_training_records``), else keeps the shipped priors for m;
the trained parameters are plain JSON (``Model.settings``) the resolve stage stores with its run.
``score`` returns the pairs the blocking rules generate, above a probability floor, as numpy
arrays; ``score_between`` only the pairs between changed records and the rest (incremental);
``explain_pair`` one pair with the weight of every field. The same settings run on Spark through
Splink's ``SparkAPI`` (docs/identity.md); the tests use DuckDB.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from concord.identity.normalise import CustomerRecord

Kind = Literal["company", "person"]
KINDS: tuple[Kind, ...] = ("company", "person")

log = logging.getLogger(__name__)
for _name in ("splink", "duckdb"):
    logging.getLogger(_name).setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field comparison: its Splink column, its levels' labels and the shipped m/u priors."""

    name: str
    levels: tuple[str, ...]
    m: tuple[float, ...]
    u: tuple[float, ...]


_ID = ("identifiers", ("same identifier", "no identifier shared"), (0.95, 0.05), (1e-6, 0.999999))
_STREET = (
    "street",
    ("exact", "similar (JW >= 0.9)", "different"),
    (0.7, 0.15, 0.15),
    (0.001, 0.005, 0.994),
)
_POSTCODE = ("postcode", ("exact", "different"), (0.85, 0.15), (0.01, 0.99))
_CITY = ("city", ("exact", "different"), (0.9, 0.1), (0.05, 0.95))
_EMAIL = ("email", ("exact", "different"), (0.6, 0.4), (1e-5, 0.99999))
_PHONE = ("phone", ("exact", "different"), (0.6, 0.4), (1e-5, 0.99999))

COMPANY_FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(*f)
    for f in (
        (
            "org_name",
            ("exact", "JW >= 0.95", "JW >= 0.88", "JW >= 0.80", "different"),
            (0.7, 0.12, 0.08, 0.05, 0.05),
            (0.0005, 0.001, 0.005, 0.03, 0.9635),
        ),
        ("legal_form", ("same", "different"), (0.9, 0.1), (0.3, 0.7)),
        _ID,
        _STREET,
        _POSTCODE,
        _CITY,
        ("country", ("same", "different"), (0.98, 0.02), (0.4, 0.6)),
        _EMAIL,
        ("email_domain", ("exact", "different"), (0.8, 0.2), (0.001, 0.999)),
        _PHONE,
    )
)
PERSON_FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(*f)
    for f in (
        (
            "forename_surname",
            (
                "both exact",
                "swapped",
                "both JW >= 0.92",
                "both JW >= 0.88",
                "surname exact",
                "forename exact",
                "different",
            ),
            (0.6, 0.05, 0.12, 0.08, 0.08, 0.04, 0.03),
            (1e-5, 1e-6, 5e-5, 2e-4, 0.005, 0.02, 0.97474),
        ),
        (
            "birth_date",
            ("exact", "one character off", "different"),
            (0.85, 0.1, 0.05),
            (3e-4, 3e-3, 0.9967),
        ),
        _ID,
        _STREET,
        _POSTCODE,
        _CITY,
        ("country", ("same", "different"), (0.98, 0.02), (0.4, 0.6)),
        _EMAIL,
        _PHONE,
    )
)
FIELDS: dict[Kind, tuple[FieldSpec, ...]] = {"company": COMPANY_FIELDS, "person": PERSON_FIELDS}

TF_COLUMNS: dict[Kind, tuple[str, ...]] = {
    "company": ("org_name", "postcode", "city", "email_domain"),
    "person": ("forename", "surname", "postcode", "city"),
}
"""Columns with term-frequency adjustments on their exact level."""

COLUMNS: dict[Kind, tuple[str, ...]] = {
    "company": (
        "org_name",
        "org_prefix",
        "legal_form",
        "identifiers",
        "street",
        "postcode",
        "city",
        "country",
        "email",
        "email_domain",
        "phone",
    ),
    "person": (
        "forename",
        "surname",
        "birth_date",
        "identifiers",
        "street",
        "postcode",
        "city",
        "country",
        "email",
        "phone",
    ),
}

BLOCKING: dict[Kind, tuple[tuple[str, ...], ...]] = {
    "company": (
        ("org_name",),
        ("postcode", "org_prefix"),
        ("phone",),
        ("email",),
        ("street", "postcode"),
        ("email_domain", "org_prefix"),
    ),
    "person": (
        ("forename", "surname"),
        ("surname", "birth_date"),
        ("forename", "birth_date"),
        ("postcode", "surname"),
        ("postcode", "forename"),
        ("email",),
        ("phone",),
        ("street", "postcode"),
    ),
}
"""Blocking rules: a pair is scored only when it agrees exactly on one of these column sets."""

EM_BLOCKS: dict[Kind, tuple[tuple[str, ...], ...]] = {
    "company": (("org_name",), ("postcode", "org_prefix")),
    "person": (("birth_date",), ("postcode", "surname")),
}
"""Blocking rules EM trains on (each leaves the other fields free to learn from)."""

DETERMINISTIC: dict[Kind, tuple[tuple[str, ...], ...]] = {
    "company": (("org_name", "postcode"), ("email",)),
    "person": (("forename", "surname", "birth_date"), ("email",)),
}
"""Near-certain rules that estimate the prior (how likely two random records match)."""


def kind_of(rec: CustomerRecord) -> Kind:
    """Which model compares this record."""
    return "person" if rec.is_person else "company"


def _first(values: Sequence[str]) -> str | None:
    return values[0] if values else None


def feature_table(records: Sequence[CustomerRecord], ids: Sequence[int], kind: Kind) -> pa.Table:
    """The Splink input table: one row per record, ``unique_id`` its index in ``records``."""
    cols: dict[str, list[Any]] = {c: [] for c in ("unique_id", *COLUMNS[kind])}
    for i in ids:
        r = records[i]
        cols["unique_id"].append(i)
        if kind == "company":
            cols["org_name"].append(r.name_key or None)
            cols["org_prefix"].append(r.name_key[:3] or None)
            cols["legal_form"].append(r.legal_form)
            cols["email_domain"].append(_first(r.email_domains))
        else:
            cols["forename"].append(r.given_key or None)
            cols["surname"].append(r.family_key or None)
            cols["birth_date"].append(r.birth_date)
        cols["identifiers"].append([f"{k.type}:{k.value}" for k in r.identifiers] or None)
        cols["street"].append(r.street or None)
        cols["postcode"].append(_first(r.postcodes))
        cols["city"].append(_first(r.cities))
        cols["country"].append(r.country)
        cols["email"].append(_first(r.emails))
        cols["phone"].append(_first(r.phones))
    schema = {c: (pa.list_(pa.string()) if c == "identifiers" else pa.string()) for c in cols}
    schema["unique_id"] = pa.int64()
    return pa.table({c: pa.array(v, type=schema[c]) for c, v in cols.items()})


def _comparisons(kind: Kind, with_priors: bool) -> list[Any]:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    made: dict[str, Any] = {
        "identifiers": cl.ArrayIntersectAtSizes("identifiers", [1]),
        "street": cl.JaroWinklerAtThresholds("street", [0.9]),
        "postcode": cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        "city": cl.ExactMatch("city").configure(term_frequency_adjustments=True),
        "country": cl.ExactMatch("country"),
        "email": cl.ExactMatch("email"),
        "phone": cl.ExactMatch("phone"),
    }
    if kind == "company":
        made["org_name"] = cl.CustomComparison(
            output_column_name="org_name",
            comparison_levels=[
                cll.NullLevel("org_name"),
                cll.ExactMatchLevel("org_name").configure(tf_adjustment_column="org_name"),
                cll.JaroWinklerLevel("org_name", 0.95),
                cll.JaroWinklerLevel("org_name", 0.88),
                cll.JaroWinklerLevel("org_name", 0.80),
                cll.ElseLevel(),
            ],
        )
        made["legal_form"] = cl.ExactMatch("legal_form")
        made["email_domain"] = cl.ExactMatch("email_domain").configure(
            term_frequency_adjustments=True
        )
    else:
        made["forename_surname"] = cl.ForenameSurnameComparison("forename", "surname")
        made["birth_date"] = cl.CustomComparison(
            output_column_name="birth_date",
            comparison_levels=[
                cll.NullLevel("birth_date"),
                cll.ExactMatchLevel("birth_date"),
                cll.DamerauLevenshteinLevel("birth_date", 1),
                cll.ElseLevel(),
            ],
        )
    out = []
    for spec in FIELDS[kind]:
        comp = made[spec.name]
        if with_priors:
            comp = comp.configure(m_probabilities=list(spec.m), u_probabilities=list(spec.u))
        out.append(comp)
    return out


def settings_for(kind: Kind, prior: float = 1e-4) -> dict[str, Any]:
    """The Splink settings of a model with the shipped priors (before any training)."""
    from splink import SettingsCreator, block_on

    creator = SettingsCreator(
        link_type="dedupe_only",
        comparisons=_comparisons(kind, with_priors=True),
        blocking_rules_to_generate_predictions=[block_on(*b) for b in BLOCKING[kind]],
        probability_two_random_records_match=prior,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        max_iterations=12,
        em_convergence=0.001,
    )
    return creator.create_settings_dict("duckdb")


@dataclass(slots=True)
class Model:
    """A trained (or prior) model per kind: Splink settings JSON with the m/u probabilities."""

    settings: dict[Kind, dict[str, Any]] = field(default_factory=dict)
    trained_on: dict[Kind, int] = field(default_factory=dict)
    method: dict[Kind, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """What the store keeps (``identity_models.model``)."""
        return {"settings": self.settings, "trained_on": self.trained_on, "method": self.method}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        """The model as the store kept it."""
        return cls(
            settings=dict(data.get("settings") or {}),
            trained_on=dict(data.get("trained_on") or {}),
            method=dict(data.get("method") or {}),
        )

    def for_kind(self, kind: Kind) -> dict[str, Any]:
        """The settings of one kind; the shipped priors when it was never trained."""
        found = self.settings.get(kind)
        return copy.deepcopy(found) if found else settings_for(kind)


def _linker(table: pa.Table, settings: dict[str, Any]) -> Any:
    from splink import DuckDBAPI, Linker

    db = DuckDBAPI()
    db._con.execute("SET threads TO 2")
    frame = db.register(table)
    return Linker(frame, copy.deepcopy(settings), log_level=logging.ERROR)


def train_kind(
    records: Sequence[CustomerRecord], ids: Sequence[int], kind: Kind, min_records: int
) -> tuple[dict[str, Any], str]:
    """Settings of one kind trained on these records: u sampled, m by EM when enough records."""
    from splink import block_on

    settings = settings_for(kind)
    if len(ids) < max(min_records // 10, 3):
        return settings, "priors (too few records to sample u)"
    linker = _linker(feature_table(records, ids, kind), settings)
    pairs = len(ids) * (len(ids) - 1) / 2
    linker.training.estimate_u_using_random_sampling(
        max_pairs=min(2e6, pairs), seed=42, min_count_per_level=None
    )
    if len(ids) < min_records:
        return linker.misc.save_model_to_json(), "u sampled, m priors (small base)"
    try:
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*b) for b in DETERMINISTIC[kind]], recall=0.7
        )
    except Exception as exc:
        log.info("identity: prior kept (%s)", exc)
    trained = 0
    for cols in EM_BLOCKS[kind]:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*cols), estimate_without_term_frequencies=True
            )
            trained += 1
        except ValueError as exc:  # a level never observed in the blocked pairs
            log.warning("identity: EM on %s blocked by %s did not converge (%s)", kind, cols, exc)
    if not trained:
        return linker.misc.save_model_to_json(), "u sampled, m priors (EM failed)"
    return linker.misc.save_model_to_json(), "u sampled, m by EM"


def train(records: Sequence[CustomerRecord], min_records: int = 2000) -> Model:
    """Train both models on the whole base (records of each kind)."""
    model = Model()
    for kind in KINDS:
        ids = [i for i, r in enumerate(records) if kind_of(r) == kind]
        model.settings[kind], model.method[kind] = train_kind(records, ids, kind, min_records)
        model.trained_on[kind] = len(ids)
    return model


@dataclass(slots=True)
class Scored:
    """Scored candidate pairs (record indices), match weights and probabilities."""

    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray
    probability: np.ndarray
    comparisons: int = 0

    @classmethod
    def empty(cls) -> Scored:
        """No pair."""
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), z, z)

    def extend(self, other: Scored) -> Scored:
        """Both sets of pairs."""
        return Scored(
            np.concatenate([self.left, other.left]),
            np.concatenate([self.right, other.right]),
            np.concatenate([self.weight, other.weight]),
            np.concatenate([self.probability, other.probability]),
            self.comparisons + other.comparisons,
        )

    def within(self, scope: Sequence[int], size: int) -> Scored:
        """The pairs of records in ``scope`` (ascending indices of ``size``), renumbered."""
        position = np.full(size, -1, dtype=np.int64)
        position[np.asarray(scope, dtype=np.int64)] = np.arange(len(scope), dtype=np.int64)
        left, right = position[self.left], position[self.right]
        keep = (left >= 0) & (right >= 0)
        return Scored(
            left[keep], right[keep], self.weight[keep], self.probability[keep], self.comparisons
        )


def _scored(frame: Any) -> Scored:
    table = frame.as_pyarrow_table()
    return Scored(
        table.column("unique_id_l").to_numpy().astype(np.int64),
        table.column("unique_id_r").to_numpy().astype(np.int64),
        table.column("match_weight").to_numpy(zero_copy_only=False).astype(np.float64),
        table.column("match_probability").to_numpy(zero_copy_only=False).astype(np.float64),
    )


def score(records: Sequence[CustomerRecord], model: Model, floor: float = 0.5) -> Scored:
    """Every blocked pair of the same kind with probability at least ``floor``."""
    out = Scored.empty()
    for kind in KINDS:
        ids = [i for i, r in enumerate(records) if kind_of(r) == kind]
        if len(ids) < 2:
            continue
        linker = _linker(feature_table(records, ids, kind), model.for_kind(kind))
        out = out.extend(_scored(linker.inference.predict(threshold_match_probability=floor)))
    return out


def score_between(
    records: Sequence[CustomerRecord],
    changed: Sequence[int],
    model: Model,
    floor: float = 0.5,
) -> Scored:
    """Pairs that involve a changed record: changed vs the rest, and within the changed.

    Term frequencies come from the whole base, so a weight does not depend on what changed.
    """
    from splink import DuckDBAPI, Linker

    changed_set = set(changed)
    out = Scored.empty()
    for kind in KINDS:
        new = [i for i in changed if kind_of(records[i]) == kind]
        if not new:
            continue
        rest = [i for i, r in enumerate(records) if kind_of(r) == kind and i not in changed_set]
        db = DuckDBAPI()
        db._con.execute("SET threads TO 2")
        whole = feature_table(records, [*rest, *new], kind)
        full = db.register(whole, table_name="whole")
        linker = Linker(full, model.for_kind(kind), log_level=logging.ERROR)
        for col in TF_COLUMNS[kind]:
            linker.table_management.compute_tf_table(col)
        left = db.register(feature_table(records, new, kind), table_name="changed")
        if len(new) > 1:
            out = out.extend(
                _scored(linker.inference.predict_within(left, threshold_match_probability=floor))
            )
        if rest:
            right = db.register(feature_table(records, rest, kind), table_name="existing")
            out = out.extend(
                _scored(
                    linker.inference.predict_between(left, right, threshold_match_probability=floor)
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class FieldWeight:
    """What one field added to (or removed from) a pair's match weight, and why."""

    field: str
    level: str
    weight: float
    tf_adjustment: float = 0.0


@dataclass(slots=True)
class PairScore:
    """A pair's prior, the weight of every field, the total and the probability."""

    kind: Kind
    prior_weight: float
    fields: list[FieldWeight]
    match_weight: float
    probability: float


def _level_label(spec: FieldSpec, gamma: int) -> str:
    if gamma < 0:
        return "missing on one side"
    index = len(spec.levels) - 1 - gamma
    return spec.levels[index] if 0 <= index < len(spec.levels) else f"level {gamma}"


def explain_pair(
    a: CustomerRecord,
    b: CustomerRecord,
    model: Model,
    tf: dict[str, dict[str, float]] | None = None,
) -> PairScore:
    """The pair scored by the model, field by field (``tf``: term frequencies per column)."""
    kind = kind_of(a)
    records = [a, b]
    table = feature_table(records, [0, 1], kind)
    settings = model.for_kind(kind)
    settings["retain_intermediate_calculation_columns"] = True
    settings["retain_matching_columns"] = True
    linker = _linker(table, settings)
    rows = table.to_pylist()
    for row in rows:
        for col in TF_COLUMNS[kind]:
            value = row.get(col)
            row[f"tf_{col}"] = (tf or {}).get(col, {}).get(value, 0.5) if value else None
    result = linker.inference.score_pair(rows[0], rows[1]).as_record_list()[0]
    fields = []
    for spec in FIELDS[kind]:
        gamma = int(result.get(f"gamma_{spec.name}", -1))
        weight = float(result.get(f"mw_{spec.name}", 0.0) or 0.0)
        tf_adj = float(result.get(f"mw_tf_adj_{spec.name}", 0.0) or 0.0)
        fields.append(FieldWeight(spec.name, _level_label(spec, gamma), weight, tf_adj))
    prior = float(settings.get("probability_two_random_records_match", 1e-4))
    prior_weight = math.log2(prior / (1 - prior))
    return PairScore(
        kind,
        prior_weight,
        fields,
        float(result["match_weight"]),
        float(result["match_probability"]),
    )


def term_frequencies(records: Sequence[CustomerRecord], kind: Kind) -> dict[str, dict[str, float]]:
    """Splink's term frequency of every value of the adjusted columns: count / non-null count."""
    ids = [i for i, r in enumerate(records) if kind_of(r) == kind]
    table = feature_table(records, ids, kind)
    out: dict[str, dict[str, float]] = {}
    for col in TF_COLUMNS[kind]:
        values = [v for v in table.column(col).to_pylist() if v is not None]
        counts: dict[str, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        out[col] = {v: n / len(values) for v, n in counts.items()} if values else {}
    return out
