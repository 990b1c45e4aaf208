"""``concord mappings``: validate, test, preview and draft mapping files from the command line.

``validate`` and ``test`` report every file (one line each, errors with file, line and field)
and exit non-zero when any failed; ``preview`` and ``infer`` stop at the first error, which the
CLI's one error handler prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from concord.cli.command import DEFAULT_CONFIG, ConcordCommand, ConfigOpt, group
from concord.cli.render import console, err_console, preview_table
from concord.config import PipelineConfig, load_config
from concord.contracts import Window, build_source
from concord.errors import ConcordError, ConfigError, MappingError, RecordRejected
from concord.mapping import load_mapping
from concord.mapping.infer import infer_mapping
from concord.mapping.testing import cases_path, run_mapping_tests
from concord.pipeline.context import load_mappings
from concord.store import Store

mappings_app = group("Validate, test, preview and draft mapping files.")


def _mapping_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths or [Path("mappings")]:
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*.yaml") if not f.name.endswith(".tests.yaml")))
        else:
            found.append(p)
    return found


@mappings_app.command("validate", cls=ConcordCommand)
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Mapping files or folders (default: mappings/).")
    ] = None,
) -> None:
    """Load and check every mapping; print each error with file, line, column and field."""
    failed = 0
    files = _mapping_files(paths or [])
    for f in files:
        try:
            m = load_mapping(f)
        except MappingError as exc:
            failed += 1
            err_console.print(f"[red]✗[/] {exc.message}")
        else:
            console.print(
                f"[green]✓[/] {f}  ({m.direction} {m.entity}, {len(m.read_paths)} source paths)"
            )
    console.print(f"{len(files) - failed} valid, {failed} invalid")
    if failed:
        raise typer.Exit(1)


@mappings_app.command("test", cls=ConcordCommand)
def test(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Mapping files or folders (default: mappings/).")
    ] = None,
) -> None:
    """Run the cases in each mapping's ``.tests.yaml``."""
    passed = failed = 0
    for f in _mapping_files(paths or []):
        if not cases_path(f).exists():
            failed += 1
            err_console.print(f"[red]✗[/] {f}: no test cases ({cases_path(f).name} is missing)")
            continue
        try:
            results = run_mapping_tests(f)
        except ConcordError as exc:
            failed += 1
            err_console.print(f"[red]✗[/] {exc.message}")
            continue
        for r in results:
            if r.passed:
                passed += 1
            else:
                failed += 1
                err_console.print(f"[red]✗[/] {r}")
        console.print(f"{f}: {sum(r.passed for r in results)}/{len(results)} cases pass")
    console.print(f"{passed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


@mappings_app.command("preview", cls=ConcordCommand)
def preview(
    source: str,
    entity: str,
    config: ConfigOpt = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="Records to show.")] = 5,
    staged: Annotated[
        bool,
        typer.Option("--staged", help="Use records already staged in the store; no network call."),
    ] = False,
    record_id: Annotated[
        list[str] | None, typer.Option("--id", help="With --staged: this record (repeatable).")
    ] = None,
) -> None:
    """Show records of a source entity beside what the mapping makes of them.

    Live records are pulled from the source; with --staged they are read from the store (what
    the last sync staged), so a mapping can be tried without the ERP.
    """
    cfg = load_config(config)
    if source not in cfg.sources or entity not in cfg.sources[source].entities:
        raise typer.BadParameter(f"{source}/{entity} is not in {config}")
    mapping = load_mappings(cfg)[(source, entity)]
    if staged:
        records = staged_records(cfg.store_url, source, entity, limit, record_id or [])
    else:
        records = live_records(cfg, source, entity, limit)
    rows: list[tuple[Any, Any, set[str]]] = []
    for record in records:
        try:
            out: Any = mapping.apply(record)
        except RecordRejected as exc:
            out = exc
        rows.append((record, out, mapping.unmapped_paths(record)))
    where = "staged" if staged else "live"
    console.print(preview_table(f"{source}/{entity} ({where}) through {mapping.path}", rows))


def live_records(cfg: PipelineConfig, source: str, entity: str, limit: int) -> list[Any]:
    """The first ``limit`` records the source returns for the entity (a network call)."""
    src = build_source(cfg.sources[source])
    records: list[Any] = []
    try:
        for page in src.extract(entity, Window(None, None), None):
            records.extend(page.records[: limit - len(records)])
            if len(records) >= limit:
                break
    finally:
        src.close()
    return records


def staged_records(
    store_url: str, source: str, entity: str, limit: int, ids: list[str]
) -> list[Any]:
    """Records of the entity as the store staged them (no network call)."""
    store = Store.open(store_url, create=False)
    try:
        found = store.staged_records(source, entity, limit=limit, ids=ids)
    finally:
        store.dispose()
    if not found:
        which = f" with id {', '.join(ids)}" if ids else ""
        raise ConcordError(
            f"no staged records of {source}/{entity}{which} in {store.safe_url}; "
            "run `concord sync` first, or preview live records without --staged"
        )
    return [orjson.loads(payload) for _, payload in found]


@mappings_app.command("infer", cls=ConcordCommand)
def infer(
    sample: Annotated[Path, typer.Argument(help="JSON file: one record or a list.")],
    entity: Annotated[str, typer.Option(help="Canonical entity, e.g. customers.")],
    source: Annotated[str, typer.Option(help="Source name in the draft.")] = "my_erp",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the draft here (and validate it).")
    ] = None,
) -> None:
    """Draft a mapping from a sample payload (review it before use).

    The draft is printed as plain YAML (pipe it into a file), or written to --out and loaded
    back, so a draft that would not load is said at once.
    """
    try:
        data = orjson.loads(sample.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(str(exc), file=str(sample)) from None
    try:
        draft = infer_mapping(data, entity, source=source)
    except ValueError as exc:
        raise ConfigError(str(exc), key="--entity") from None
    if out is None:
        sys.stdout.write(draft)
        return
    out.write_text(draft, encoding="utf-8")
    mapping = load_mapping(out)
    err_console.print(f"[green]✓[/] {out}: a draft {mapping.entity} mapping; review every line")
