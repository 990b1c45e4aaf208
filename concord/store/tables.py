"""The store's schema: staging, canonical rows, identity, 360, push state and run bookkeeping.

Canonical tables keep the columns the 360 aggregates in SQL (amounts, dates, statuses) and the
whole validated row as JSON in ``data``. Keys are (source, source_id) everywhere: a rerun upserts
the same rows. Alembic migrations under ``concord/migrations`` create and evolve these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    text,
)

from concord.store.types import MoneyType, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("status", String(16), nullable=False),  # running | succeeded | failed
    Column("trigger", String(32), nullable=False, default="cli"),
    Column("window_start", UtcDateTime),
    Column("window_end", UtcDateTime),
    Column("report", JSON, nullable=False, default=dict),
)

locks = Table(
    "locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("run_id", String(64)),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
)

watermarks = Table(
    "watermarks",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("cursor", String(100)),  # highest committed cursor value (ISO time or number)
    Column("checkpoint", Text),  # resume token inside an unfinished extract, else NULL
    Column("checkpoint_cursor", String(100)),  # highest cursor seen in the unfinished extract
    Column("window_end", UtcDateTime),  # fixed end of the unfinished extract's window
    Column("swept_at", UtcDateTime),  # when the entity's ids were last swept (tombstones)
    Column("run_id", String(64)),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One row per shard of a sharded extract (Airflow splits a large entity by time window): the
# shard's own checkpoint, so a retried shard resumes alone; the entity's row in ``watermarks``
# advances only once every shard of the run is ``done``.
shard_watermarks = Table(
    "shard_watermarks",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("shard", String(32), primary_key=True),  # "<index>/<count>", e.g. "2/4"
    Column("run_id", String(64), nullable=False),
    Column("window_start", UtcDateTime),
    Column("window_end", UtcDateTime),
    Column("status", String(16), nullable=False),  # running | done
    Column("checkpoint", Text),  # resume token inside the shard, else NULL
    Column("high_cursor", String(100)),  # highest cursor committed by the shard
    Column("updated_at", UtcDateTime, nullable=False),
)

raw_records = Table(
    "raw_records",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("source_id", String(200), primary_key=True),
    Column("payload", LargeBinary, nullable=False),  # orjson bytes, exactly as received
    Column("hash", String(32), nullable=False),
    Column("cursor", String(100)),
    Column("deleted_at", UtcDateTime),  # a tombstone: the source no longer lists this id (sweep)
    Column("run_id", String(64), nullable=False),
    Column("extracted_at", UtcDateTime, nullable=False),
)

# The map state of each raw record, one narrow row per raw record (issue 19): marking a record
# mapped rewrites this row, not the raw record with its payload, and the partial index holds only
# the pending ones. ``hash`` is the staged payload's (a payload staged again while it was being
# mapped stays pending); ``run_id`` the run that staged it (what reconcile reads of a run).
raw_state = Table(
    "raw_state",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("source_id", String(200), primary_key=True),
    Column("hash", String(32), nullable=False),
    Column("pending", Boolean, nullable=False),  # changed since last mapped
    Column("mapped_fp", String(32)),  # fingerprint of the mapping that last mapped it (replay)
    Column("run_id", String(64), nullable=False),
    Index(
        "ix_raw_state_pending",
        "source",
        "entity",
        "source_id",
        sqlite_where=text("pending"),
        postgresql_where=text("pending"),
    ),
    Index("ix_raw_state_run_id", "source", "entity", "run_id"),
    sqlite_with_rowid=False,
)

RAW_WITH_STATE = and_(
    raw_records.c.source == raw_state.c.source,
    raw_records.c.entity == raw_state.c.entity,
    raw_records.c.source_id == raw_state.c.source_id,
)
"""A raw record joined to its ``raw_state`` row (the same key)."""


rejects = Table(
    "rejects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("stage", String(16), nullable=False),  # extract | map | push
    Column("source", String(100), nullable=False),  # source or target name
    Column("entity", String(100), nullable=False),
    Column("source_id", String(200)),
    Column("field", String(200)),
    Column("reason", Text, nullable=False),
    Column("location", String(300)),  # mapping file:line
    Column("payload", LargeBinary),
    Column("created_at", UtcDateTime, nullable=False),
    Column("resolved_run", String(64)),
    Index("ix_rejects_open", "source", "entity", "source_id", "resolved_run"),
    Index("ix_rejects_run", "run_id"),
)


def _canonical(name: str, *columns: Column[object] | Index) -> Table:
    return Table(
        name,
        metadata,
        Column("source", String(100), primary_key=True),
        Column("source_id", String(200), primary_key=True),
        *columns,
        Column("data", JSON, nullable=False),
        Column("hash", String(32), nullable=False),
        Column("updated_at", UtcDateTime),
        # indexed: the 360 finds the rows a run changed (``concord.pipeline.build_360``)
        Column("run_id", String(64), nullable=False, index=True),
        Column("mapping_fp", String(32)),  # fingerprint of the mapping the row came from
        Column("state", String(16)),  # NULL: live; archived; deleted (a tombstone)
    )


customers = _canonical(
    "customers",
    Column("name", String(300), nullable=False),
    Column("email", String(320)),
    Column("tax_id", String(64)),
    Column("country", String(2)),
    Column("number", String(100), index=True),  # the ERP's customer number
)

orders = _canonical(
    "orders",
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100), nullable=False),
    Column("ordered_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("net_total", MoneyType, nullable=False),
    Column("gross_total", MoneyType, nullable=False),
    # per ERP customer: the 360 counts and reads a customer's documents from this index alone
    Index("ix_orders_source_customer", "source", "customer_id"),
)

shipments = _canonical(
    "shipments",
    Column("customer_id", String(200), nullable=False),
    Column("order_id", String(200)),
    Column("status", String(16), nullable=False),
    Column("shipped_at", UtcDateTime),
    Column("delivered_at", UtcDateTime),
    Column("promised_at", UtcDateTime),
    # per ERP customer: the 360 counts and reads a customer's documents from this index alone
    Index("ix_shipments_source_customer", "source", "customer_id"),
)

invoices = _canonical(
    "invoices",
    Column("customer_id", String(200), nullable=False),
    Column("order_id", String(200)),
    Column("status", String(16), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime),
    Column("currency", String(3), nullable=False),
    Column("total", MoneyType, nullable=False),
    Column("open_amount", MoneyType, nullable=False),
    # per ERP customer: the 360 counts and reads a customer's documents from this index alone
    Index("ix_invoices_source_customer", "source", "customer_id"),
)

payments = _canonical(
    "payments",
    Column("customer_id", String(200), nullable=False),
    Column("invoice_id", String(200), index=True),
    Column("status", String(16), nullable=False),
    Column("paid_at", UtcDateTime, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", MoneyType, nullable=False),
    # per ERP customer: the 360 counts and reads a customer's documents from this index alone
    Index("ix_payments_source_customer", "source", "customer_id"),
)

# Dated exchange rates from the ERPs (the exact rate and units are in ``data``).
exchange_rates = _canonical(
    "exchange_rates",
    Column("currency", String(3), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("base", String(3)),
)

CANONICAL_TABLES: dict[str, Table] = {
    "customers": customers,
    "orders": orders,
    "shipments": shipments,
    "invoices": invoices,
    "payments": payments,
    "exchange_rates": exchange_rates,
}

# A canonical row whose record has since turned bad (its new payload is an open reject) is moved
# here, out of every reader's way (resolve, 360, push, reconcile), until the record maps again:
# the last good values stay inspectable and nothing downstream goes on with them unflagged.
quarantine = Table(
    "quarantine",
    metadata,
    Column("canonical_entity", String(32), primary_key=True),  # the canonical table's name
    Column("source", String(100), primary_key=True),
    Column("source_id", String(200), primary_key=True),
    Column("entity", String(100), nullable=False),  # the source entity the record came from
    Column("data", JSON, nullable=False),  # the last good canonical row
    Column("hash", String(32), nullable=False),
    Column("mapping_fp", String(32)),
    Column("run_id", String(64), nullable=False),  # the run that quarantined it
    Column("quarantined_at", UtcDateTime, nullable=False),
)

golden = Table(
    "golden",
    metadata,
    Column("concord_id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),  # active | merged
    Column("merged_into", String(32), ForeignKey("golden.concord_id")),
    # A related account (bill-to, parent, branch head office): related, never merged.
    Column("parent_concord_id", String(32)),
    Column("created_run", String(64), nullable=False),
    Column("updated_run", String(64), nullable=False),
)

identity_links = Table(
    "identity_links",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("source_id", String(200), primary_key=True),
    Column("concord_id", String(32), nullable=False, index=True),
    Column("rule", String(64), nullable=False),  # which rule linked it ("seed" for the first)
    Column("score", Float, nullable=False),
    Column("matched_to", String(300)),  # the record key it matched
    Column("run_id", String(64), nullable=False, index=True),
    # What identity compared of the record when it was linked (incremental runs skip the same).
    Column("fingerprint", String(32)),
)

identity_models = Table(
    "identity_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("records", Integer, nullable=False),  # the base it was trained on
    Column("model", JSON, nullable=False),  # Splink settings with m/u per kind
)

identity_reviews = Table(
    "identity_reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # pending | accepted | rejected
    Column("reason", String(300), nullable=False),
    Column("records", JSON, nullable=False),  # every record key of the held cluster
    Column("parts", JSON, nullable=False),  # the clusters kept apart meanwhile (record keys)
    Column("bridges", JSON, nullable=False),  # the links that would join them, with evidence
    Column("decided_at", UtcDateTime),
)

identity_events = Table(
    "identity_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # new | merge | split
    Column("concord_id", String(32), nullable=False),
    Column("other_id", String(32)),
    Column("detail", JSON, nullable=False, default=dict),
    Column("created_at", UtcDateTime, nullable=False),
)

# One row per resolve: the digest of what its links rest on besides the records (identity
# config, overrides, accepted reviews, linking code) and how much it re-linked. A night with the
# same basis and deterministic rules re-links only the components its changes touched.
identity_resolves = Table(
    "identity_resolves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("resolved_at", UtcDateTime, nullable=False),
    Column("basis", String(32), nullable=False),
    Column("mode", String(16), nullable=False),  # full | incremental | components
    Column("records", Integer, nullable=False),
    Column("relinked", Integer, nullable=False),  # records linked by this run's rules
)

# Each canonical customer as identity normalised it, with the digest of the data and settings
# it came from: a night normalises only the customers whose row changed (``identity.normalise``).
identity_records = Table(
    "identity_records",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("source_id", String(200), primary_key=True),
    Column("basis", String(32), nullable=False),
    Column("record", LargeBinary, nullable=False),  # orjson of the normalised fields
)

# A 360 row is two rows (``concord.customer360.stored``): its figures that change only with
# the customer's documents here, those that change with the date or the whole base (as_of, RFM,
# tier, lifecycle, churn, the receivable check) in ``customer360_daily``. A night rewrites every
# customer's narrow daily row and only the changed customers' documents figures.
customer360 = Table(
    "customer360",
    metadata,
    Column("concord_id", String(32), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("data", JSON, nullable=False),  # the row's fields but the daily ones
    Column("base_hash", String(32), nullable=False),  # hash of ``data``'s figures
    Column("updated_at", UtcDateTime, nullable=False),  # when ``data`` last changed
    Column("run_id", String(64), nullable=False),
)

customer360_daily = Table(
    "customer360_daily",
    metadata,
    Column("concord_id", String(32), primary_key=True),
    Column("data", JSON, nullable=False),  # the daily fields, with the whole row's content hash
    Column("content_hash", String(32), nullable=False),  # of the whole row (base and daily)
    Column("value_tier", String(1)),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("run_id", String(64), nullable=False),
)

# What the last build of each golden customer read, so the next night recomputes only the
# customers whose inputs changed or whose time-dependent figures crossed a boundary
# (``concord.pipeline.build_360``). ``counts`` catches what no run id shows (a row deleted or
# moved away); ``boundary_day``/``boundary_at`` say when a figure next changes with time alone;
# ``fx_day`` is the latest date the customer converted money at.
customer360_inputs = Table(
    "customer360_inputs",
    metadata,
    Column("concord_id", String(32), primary_key=True),
    Column("counts", String(200), nullable=False),
    Column("has_row", Boolean, nullable=False),
    Column("orders", Integer, nullable=False),
    Column("revenue", String(64), nullable=False),  # exact Decimal, for tiers and RFM
    Column("first_day", Date),
    Column("last_day", Date),
    Column("records", JSON, nullable=False),  # per source record, for the receivable check
    Column("missing", JSON, nullable=False),  # documents without a rate: [currency, day, n]
    Column("boundary_day", Date, index=True),  # a figure changes once the business date is here
    Column("boundary_at", UtcDateTime, index=True),  # ... once as_of is past this moment
    Column("fx_day", Date, index=True),
    Column("today_fx", Boolean, nullable=False),  # converts at as_of's own rate
    Column("run_id", String(64), nullable=False),
)

# One row per 360 build: what the next one compares with (as of when, on which basis, which
# rates, which run ids it had seen), and how many it recomputed and why.
customer360_builds = Table(
    "customer360_builds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("built_at", UtcDateTime, nullable=False),
    Column("as_of", UtcDateTime, nullable=False),
    Column("today", Date, nullable=False),
    Column("basis", String(32), nullable=False),  # config, sources with invoices, code version
    Column("rates", JSON, nullable=False),  # every rate in force: [set, base, currency, ...]
    Column("seen_runs", JSON, nullable=False),  # run ids present in the inputs
    Column("mode", String(16), nullable=False),  # full | incremental
    Column("reason", Text, nullable=False),
    Column("churn_params", JSON),  # the fitted MBG/NBD parameters: the next fit starts there
)

push_state = Table(
    "push_state",
    metadata,
    Column("target", String(100), primary_key=True),
    Column("concord_id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),  # accepted | rejected | superseded
    Column("accepted_hash", String(32)),  # hash of what the target last accepted
    Column("attempted_hash", String(32)),
    Column("remote_id", String(100)),
    Column("accepted_properties", JSON),  # what the target last accepted: old values in a plan
    Column("object_type", String(40)),  # company | person: which object it is in the target
    Column("source_hash", String(32)),  # 360 row + mapping it was accepted from: skip re-mapping
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_id", String(64), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

stage_reports = Table(
    "stage_reports",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("stage", String(16), primary_key=True),
    Column("scope", String(200), primary_key=True),  # "source/entity", target name, or "all"
    Column("status", String(16), nullable=False),  # succeeded | failed
    Column("report", JSON, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
)
