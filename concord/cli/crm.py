"""``concord crm setup``: check, or create, the CRM properties the outbound mappings write.

For a target whose connector can (``PropertyTarget``: HubSpot) it reads the CRM's definitions of
every property the target's mapping and person mapping write and creates the missing ones in the
target's property group (``--dry-run``: only reports). For the others (Salesforce: custom fields
are deployed as metadata, which stays with the org's admin) it prints the checklist: each field,
its type and whether it must be unique, to create in Setup. A push refuses up front, naming them,
while a HubSpot property is missing.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from concord.cli.command import (
    DEFAULT_CONFIG,
    ConcordCommand,
    ConfigOpt,
    JsonOpt,
    TargetsOpt,
    group,
    target_names,
)
from concord.cli.render import console, print_json
from concord.config import PipelineConfig, load_config
from concord.contracts import ObjectKind, PropertySpec, PropertyState, PropertyTarget, build_target
from concord.mapping import load_mapping
from concord.push.properties import outbound_properties

crm_app = group("Prepare the CRMs: the properties concord writes.")


def target_properties(config: PipelineConfig, name: str) -> list[PropertySpec]:
    """Every property the target's mapping (companies) and person mapping (contacts) write."""
    tcfg = config.targets[name]
    specs = outbound_properties(load_mapping(config.resolve_path(tcfg.mapping)), "company")
    if tcfg.person_mapping is not None:
        person = load_mapping(config.resolve_path(tcfg.person_mapping))
        specs += outbound_properties(person, "person")
    if tcfg.retire == "mark":  # the status a retired customer is marked with (push/retire.py)
        kinds: tuple[ObjectKind, ...] = (
            ("company", "person") if tcfg.person_mapping is not None else ("company",)
        )
        specs += [
            PropertySpec(tcfg.retire_property, "concord status", "string", object_type=kind)
            for kind in kinds
            if not any(s.name == tcfg.retire_property and s.object_type == kind for s in specs)
        ]
    return specs


def setup_target(config: PipelineConfig, name: str, *, dry_run: bool) -> list[PropertyState]:
    """Check (``dry_run``) or create the target's properties; a checklist where it cannot."""
    specs = target_properties(config, name)
    target = build_target(config.targets[name])
    try:
        if isinstance(target, PropertyTarget):
            return target.check_properties(specs, create=not dry_run)
        return [
            PropertyState(s, "missing", "not checked: create this custom field in Setup")
            if s.name.endswith("__c")
            else PropertyState(s, "standard", "not checked")
            for s in specs
        ]
    finally:
        target.close()


@crm_app.command("setup", cls=ConcordCommand)
def setup(
    config: ConfigOpt = DEFAULT_CONFIG,
    target: TargetsOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what exists and what differs; create nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create (or with --dry-run check) the CRM properties the outbound mappings write."""
    cfg = load_config(config)
    names = target_names(cfg, target)
    report: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        states = setup_target(cfg, name, dry_run=dry_run)
        report[name] = [
            {
                "object": s.spec.object_type,
                "property": s.spec.name,
                "label": s.spec.label,
                "type": s.spec.type,
                "unique": s.spec.unique,
                "state": s.state,
                "detail": s.detail,
            }
            for s in states
        ]
    if as_json:
        print_json(report)
        return
    for name, rows in report.items():
        table = Table(
            "object",
            "property",
            "type",
            "state",
            "detail",
            title=f"{name} ({cfg.targets[name].type})",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
        )
        for row in rows:
            kind = row["type"] + (", unique" if row["unique"] else "")
            table.add_row(row["object"], row["property"], kind, row["state"], row["detail"])
        console.print(table)
        missing = [r["property"] for r in rows if r["state"] in ("missing", "differs")]
        if missing:
            console.print(f"{name}: to do: {', '.join(missing)}")
