"""The nightly sync as stage functions: extract, map, resolve, build 360, push, reconcile.

Each stage reads and writes the store, commits its own work and returns its typed report
(``reports``), so the CLI runs them in sequence (``run_sync``) and Airflow runs each as its own
task, passing only the run id. Every stage is idempotent: rerunning it, or resuming after a
crash, ends in the same store. ``context`` holds what stages share, ``lifecycle`` the one run
lifecycle (lock, begin, finish).

The names below are imported on first use, so a stage's own modules (``concord.push``, ...) can
use ``concord.pipeline.context`` without importing every stage first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concord.pipeline.build_360 import build_360
    from concord.pipeline.context import (
        RunContext,
        RunOptions,
        load_mappings,
        new_run_id,
        open_context,
    )
    from concord.pipeline.extract import extract
    from concord.pipeline.lifecycle import locked_run
    from concord.pipeline.map import map_entity
    from concord.pipeline.push import push
    from concord.pipeline.reconcile import reconcile
    from concord.pipeline.reports import RunReport
    from concord.pipeline.resolve import resolve
    from concord.pipeline.sync import run_sync
    from concord.push.plan import dry_run_plan

_EXPORTS = {
    "RunContext": "concord.pipeline.context",
    "RunOptions": "concord.pipeline.context",
    "RunReport": "concord.pipeline.reports",
    "build_360": "concord.pipeline.build_360",
    "dry_run_plan": "concord.push.plan",
    "extract": "concord.pipeline.extract",
    "load_mappings": "concord.pipeline.context",
    "locked_run": "concord.pipeline.lifecycle",
    "map_entity": "concord.pipeline.map",
    "new_run_id": "concord.pipeline.context",
    "open_context": "concord.pipeline.context",
    "push": "concord.pipeline.push",
    "reconcile": "concord.pipeline.reconcile",
    "resolve": "concord.pipeline.resolve",
    "run_sync": "concord.pipeline.sync",
}
__all__ = [
    "RunContext",
    "RunOptions",
    "RunReport",
    "build_360",
    "dry_run_plan",
    "extract",
    "load_mappings",
    "locked_run",
    "map_entity",
    "new_run_id",
    "open_context",
    "push",
    "reconcile",
    "resolve",
    "run_sync",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'concord.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
