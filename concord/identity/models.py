"""Trained identity models kept in the store, one row per training, with the run that made it.

``current_model`` returns the latest stored model, or trains one (and stores it with the run)
when there is none or the base has grown by ``identity.model.retrain_growth`` since;
``train_and_store`` is what ``concord identity train`` runs. A model is Splink's settings JSON
with its m and u probabilities per kind (``concord.identity.scoring.Model``), so an auditor can
read what the run weighed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from concord.config import IdentityConfig
from concord.identity.normalise import CustomerRecord
from concord.identity.scoring import Model, train
from concord.store import Store
from concord.store import tables as t
from concord.utc import utcnow


def latest_model(store: Store) -> tuple[Model, int, str] | None:
    """The last stored model, the base size it was trained on and its run id."""
    m = t.identity_models
    with store.engine.connect() as conn:
        row = conn.execute(
            select(m.c.model, m.c.records, m.c.run_id).order_by(m.c.id.desc()).limit(1)
        ).first()
    if row is None:
        return None
    return Model.from_dict(row[0]), int(row[1]), str(row[2])


def store_model(store: Store, model: Model, records: int, run_id: str) -> None:
    """Keep a trained model with the run that trained it."""
    with store.begin() as conn:
        conn.execute(
            t.identity_models.insert().values(
                run_id=run_id, created_at=utcnow(), records=records, model=model.as_dict()
            )
        )


def train_and_store(
    store: Store, config: IdentityConfig, records: Sequence[CustomerRecord], run_id: str
) -> Model:
    """Train on the whole base and store the model with ``run_id``."""
    model = train(records, config.model.min_training_records)
    store_model(store, model, len(records), run_id)
    return model


def current_model(
    store: Store,
    config: IdentityConfig,
    size: int,
    records: Sequence[CustomerRecord],
    run_id: str,
) -> Model:
    """The stored model while the base has not outgrown it; else a new one, stored."""
    found = latest_model(store)
    if found is not None:
        model, trained_on, _run = found
        if size <= trained_on * (1 + config.model.retrain_growth):
            return model
    return train_and_store(store, config, records, run_id)
