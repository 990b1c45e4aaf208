"""``concord identity review|accept|reject|train``: the steward's side of identity resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from concord.cli.command import DEFAULT_CONFIG, ConcordCommand, ConfigOpt, JsonOpt, group
from concord.cli.render import console, print_json, render_reviews
from concord.config import PipelineConfig, load_config
from concord.errors import ConcordError
from concord.identity.models import train_and_store
from concord.identity.normalise import load_customer_records
from concord.identity.review import Decision, decide, list_reviews
from concord.overrides import overrides_path
from concord.store import Store
from concord.utc import utcnow

identity_app = group("Review held clusters and train the matching model.")


def _overrides(cfg: PipelineConfig) -> Path:
    path = overrides_path(cfg.identity.overrides, cfg.path.parent if cfg.path else None)
    if path is None:
        raise ConcordError(
            "identity.overrides is not set in concord.yaml: accept and reject write that file"
        )
    return path


@identity_app.command("review", cls=ConcordCommand)
def review(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    all_: Annotated[bool, typer.Option("--all", help="Decided reviews too.")] = False,
) -> None:
    """List the clusters the guard held, with the links that would join them."""
    store = Store.open(load_config(config).store_url, create=False)
    found = list_reviews(store, None if all_ else "pending")
    if as_json:
        print_json([dataclasses.asdict(r) for r in found])
        return
    render_reviews(console, found)


ReviewId = Annotated[int, typer.Argument(help="the review id `concord identity review` shows")]
Reason = Annotated[str, typer.Option("--reason", help="Why (kept in the overrides file).")]
OVERRIDE_KIND: dict[str, str] = {"accepted": "force_merge", "rejected": "never_merge"}


def _decide(config: Path, review_id: int, decision: Decision, reason: str) -> None:
    """Record a steward's decision on a held cluster as overrides and say what was written."""
    cfg = load_config(config)
    store = Store.open(cfg.store_url, create=False)
    path = _overrides(cfg)
    n = decide(store, review_id, decision, path, reason)
    console.print(
        f"review {review_id} {decision}: {n} {OVERRIDE_KIND[decision]} pair(s) written to {path}"
    )


@identity_app.command("accept", cls=ConcordCommand)
def accept(review_id: ReviewId, reason: Reason = "", config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Accept a held cluster: its links become force_merge overrides (next resolve merges)."""
    _decide(config, review_id, "accepted", reason)


@identity_app.command("reject", cls=ConcordCommand)
def reject(review_id: ReviewId, reason: Reason = "", config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Reject a held cluster: its links become never_merge overrides (kept apart for good)."""
    _decide(config, review_id, "rejected", reason)


@identity_app.command("train", cls=ConcordCommand)
def train(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Train the matching model on the whole base now and store it (the next resolve uses it)."""
    cfg = load_config(config)
    store = Store.open(cfg.store_url, create=False)
    records = load_customer_records(store, cfg.identity)
    run_id = "train-" + utcnow().strftime("%Y%m%dT%H%M%S")
    model = train_and_store(store, cfg.identity, records, run_id)
    if as_json:
        print_json({"run_id": run_id, "trained_on": model.trained_on, "method": model.method})
        return
    for kind, n in model.trained_on.items():
        console.print(f"{kind}: {n} records, {model.method[kind]}")
    console.print(f"model stored with {run_id}")
