"""Unit tests of the Airflow plan without Airflow: run ids, windows, shards, task plan, DAG
settings and failure text."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from concord.airflow.plan import (
    DEFAULT_POOL,
    EntityItem,
    ExtractItem,
    PushItem,
    ShardedEntity,
    plan_tasks,
    task_id_for,
)
from concord.airflow.settings import dag_settings
from concord.airflow.tasks import TaskRun, concord_run_id, failure_message, missing_stages
from concord.config import load_config
from concord.errors import ConfigError, SourceError
from concord.pipeline.extract import window_start
from concord.pipeline.shards import shard_windows

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 11, 1, 2, tzinfo=UTC)
T1 = datetime(2026, 11, 2, 2, tzinfo=UTC)


def _config(tmp_path: Path, extra_orders: str = "", pools: bool = False) -> Path:
    mappings = REPO / "mappings"
    text = f"""
store_url: sqlite:///{tmp_path / "c.db"}
schedule: "30 3 * * *"
sources:
  erp:
    type: rest
    base_url: http://127.0.0.1:1
    {"pool: erp_api" if pools else ""}
    entities:
      customers: {{path: /c, mapping: {mappings}/sandbox_erp/customers.yaml}}
      orders: {{path: /o, mapping: {mappings}/sandbox_erp/orders.yaml{extra_orders}}}
      invoices: {{path: /i, mapping: {mappings}/sandbox_erp/invoices.yaml, enabled: false}}
targets:
  crm:
    type: hubspot
    base_url: http://127.0.0.1:2
    mapping: {mappings}/crm/sandbox_crm.yaml
    {"pool: crm_api" if pools else ""}
"""
    path = tmp_path / "concord.yaml"
    path.write_text(text)
    return path


def test_run_id_is_the_same_for_the_same_airflow_run_and_differs_between_runs() -> None:
    a = concord_run_id("scheduled__2026-11-02T02:00:00+00:00")
    assert a == concord_run_id("scheduled__2026-11-02T02:00:00+00:00")
    assert a != concord_run_id("scheduled__2026-11-03T02:00:00+00:00")
    assert a != concord_run_id("scheduled__2026-11-02T02:00:00+00:00", dag_id="other")
    assert a.startswith("af_scheduled_2026_11_02T02_00_00_00_00_")


def test_run_id_fits_the_store_column_even_for_long_run_ids() -> None:
    long_id = "manual__" + "x" * 300
    rid = concord_run_id(long_id)
    assert len(rid) <= 64
    assert rid != concord_run_id(long_id + "y")


def test_window_starts_at_the_beginning_when_never_synced_or_full_refresh() -> None:
    assert window_start(T0, None, full_refresh=False) is None
    assert window_start(T0, "2026-10-30T00:00:00Z", full_refresh=True) is None


def test_window_is_the_data_interval_widened_back_to_the_watermark() -> None:
    assert window_start(T0, "2026-11-01T10:00:00Z", full_refresh=False) == T0
    missed = "2026-10-28T00:00:00Z"
    assert window_start(T0, missed, full_refresh=False) == datetime(2026, 10, 28, tzinfo=UTC)


def test_shards_cover_the_window_contiguously_without_overlap() -> None:
    shards = shard_windows(T0, T1, 4)
    assert [s.key for s in shards] == ["0/4", "1/4", "2/4", "3/4"]
    assert shards[0].start == T0 and shards[-1].end == T1
    for left, right in itertools.pairwise(shards):
        assert left.end == right.start
    assert shards[1].start == T0 + timedelta(hours=6)


def test_first_load_shards_split_from_since_and_the_first_shard_takes_older_records() -> None:
    since = datetime(2024, 1, 1, tzinfo=UTC)
    shards = shard_windows(None, T1, 3, since)
    assert shards[0].start is None
    assert shards[1].start == since + (T1 - since) / 3
    assert shards[-1].end == T1


def test_an_undividable_window_goes_to_the_first_shard_and_the_rest_are_empty() -> None:
    shards = shard_windows(None, T1, 3)
    assert (shards[0].start, shards[0].end) == (None, T1)
    assert all(s.start == s.end == T1 for s in shards[1:])


def test_plan_maps_enabled_entities_and_expands_shards(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, ", shards: {count: 3, since: '2024-01-01'}"))
    plan = plan_tasks(config)
    items = plan.extract[DEFAULT_POOL]
    assert [(i.entity, i.shard) for i in items] == [
        ("customers", None),
        ("orders", 0),
        ("orders", 1),
        ("orders", 2),
    ]
    assert plan.map == [EntityItem("erp", "customers"), EntityItem("erp", "orders")]
    assert plan.sharded == [ShardedEntity("erp", "orders", 3)]
    assert plan.push == {DEFAULT_POOL: [PushItem("crm")]}
    assert [i.as_dict() for i in items][1] == {
        "source": "erp",
        "entity": "orders",
        "shard": 0,
        "shards": 3,
    }
    assert ExtractItem.from_dict(items[1].as_dict()) == items[1]


def test_plan_groups_extract_and_push_by_pool(tmp_path: Path) -> None:
    plan = plan_tasks(load_config(_config(tmp_path, pools=True)))
    assert list(plan.extract) == ["erp_api"]
    assert list(plan.push) == ["crm_api"]
    assert task_id_for("extract", "erp_api") == "extract__erp_api"
    assert task_id_for("push", DEFAULT_POOL) == "push"


def test_bad_shard_settings_name_the_entity_when_the_config_loads(tmp_path: Path) -> None:
    where = r"concord.yaml:\d+ 'sources\.erp\.entities\.orders\.shards"
    with pytest.raises(ConfigError, match=where):
        load_config(_config(tmp_path, ", shards: {count: 0}"))


def test_dag_settings_take_the_schedule_from_config_and_knobs_from_env(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    settings = dag_settings(config, {"CONCORD_DAG_RETRIES": "5", "CONCORD_DAG_CATCHUP": "true"})
    assert settings.schedule == "30 3 * * *"
    assert settings.retries == 5
    assert settings.catchup is True
    assert settings.dag_id == "concord_nightly"
    with pytest.raises(ConfigError, match="CONCORD_DAG_RETRIES"):
        dag_settings(config, {"CONCORD_DAG_RETRIES": "many"})


def test_failure_message_names_stage_source_entity_and_shard() -> None:
    item = ExtractItem("erp", "orders", shard=2, shards=4)
    err = SourceError("HTTP 503", source="erp", url="http://erp/api/orders")
    text = failure_message("extract", item, err, run_id="af_x", try_number=2, max_tries=4)
    assert text.startswith("concord extract failed for source erp entity orders shard 2/4")
    assert "(run af_x, try 2 of 4)" in text
    assert "HTTP 503" in text
    assert failure_message("push", PushItem("crm"), "401").startswith(
        "concord push failed for target crm"
    )


def test_missing_stages_lists_what_did_not_succeed(tmp_path: Path) -> None:
    plan = plan_tasks(load_config(_config(tmp_path)))
    run = TaskRun("c.yaml", "r1", T0, T1)
    ok = {"status": "succeeded"}
    report = {
        "stages": {
            "extract": {"erp/customers": ok, "erp/orders": ok},
            "map": {"erp/customers": ok, "erp/orders": {"status": "failed"}},
            "resolve": {"all": ok},
            "build_360": {"all": ok},
            "reconcile": {"all": ok},
        }
    }
    assert missing_stages(report, plan, run) == ["map erp/orders", "push crm"]
    only_erp = TaskRun("c.yaml", "r1", T0, T1, targets=[])
    assert missing_stages(report, plan, only_erp) == ["map erp/orders"]


def test_task_run_from_airflow_derives_the_run_id_and_reads_params() -> None:
    run = TaskRun.from_airflow(
        config_path="c.yaml",
        dag_id="concord_nightly",
        run_id="scheduled__2026-11-02T02:00:00+00:00",
        data_interval_start=T0.replace(tzinfo=None),
        data_interval_end=T1,
        params={"full_refresh": True, "sweep": True, "sources": ["erp"]},
    )
    assert run.run_id == concord_run_id("scheduled__2026-11-02T02:00:00+00:00")
    assert run.window_start == T0
    options = run.options()
    assert options.window_start == T0
    assert (options.trigger, options.full_refresh, options.sources) == ("airflow", True, ["erp"])
    assert options.sweep  # the night lists every id and tombstones the vanished
