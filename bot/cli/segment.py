"""`nudge segment …`: save, list, show, delete and preview segments of a shop's customers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bot.cli.common import (
    RECORD_ID,
    NotFound,
    UsageProblem,
    emit,
    iso,
    json_option,
    read_json_file,
    run,
    settings_from,
    shop_or_fail,
    utc_now,
    with_database,
)
from bot.db import transaction
from bot.segments import SegmentError, member_of
from bot.store.segments import (
    delete_segment,
    get_segment,
    list_segments,
    preview_audience,
    save_segment,
)

shop_option = click.option(
    "--shop", "shop_id", type=RECORD_ID, required=True, help="The shop's id."
)
name_option = click.option("--name", required=True, help="The segment's name.")


def _record(segment: Any) -> dict[str, Any]:
    return {
        "shop_id": segment.shop_id,
        "name": segment.name,
        "definition": segment.definition,
        "created_at": iso(segment.created_at),
        "updated_at": iso(segment.updated_at),
    }


def _segment_errors(work: Any) -> Any:
    try:
        return work()
    except SegmentError as exc:
        raise UsageProblem(str(exc)) from None


@click.group()
def segment() -> None:
    """Segments: who a campaign or flow is for (see the README's segment language)."""


@segment.command("create")
@shop_option
@name_option
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A JSON file with the definition.",
)
@json_option
@click.pass_context
def segment_create(ctx: click.Context, shop_id: int, name: str, file: Path, as_json: bool) -> None:
    """Save a segment under a name (replacing one of the same name)."""
    settings = settings_from(ctx)
    definition = read_json_file(file)

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            await shop_or_fail(session, shop_id)
            saved = await save_segment(
                session=session,
                shop_id=shop_id,
                name=name,
                definition=definition,
                now=utc_now(),
            )
            return _record(saved)

    record = _segment_errors(lambda: run(with_database(settings, work)))
    emit(as_json, record, lambda: click.echo(f"segment {record['name']!r} saved"))


@segment.command("list")
@shop_option
@json_option
@click.pass_context
def segment_list(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """List the shop's saved segments."""
    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
            return [_record(s) for s in await list_segments(session=session, shop_id=shop_id)]

    records = run(with_database(settings, work))

    def human() -> None:
        if not records:
            click.echo("no segments yet: nudge segment create --shop ID --name N --file F")
        for record in records:
            click.echo(f"{record['name']}: {json.dumps(record['definition'], ensure_ascii=False)}")

    emit(as_json, records, human)


@segment.command("show")
@shop_option
@name_option
@json_option
@click.pass_context
def segment_show(ctx: click.Context, shop_id: int, name: str, as_json: bool) -> None:
    """Show a saved segment's definition."""
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
            found = await get_segment(session=session, shop_id=shop_id, name=name)
            if found is None:
                raise NotFound(f"shop {shop_id} has no segment named {name!r}")
            return _record(found)

    record = run(with_database(settings, work))
    emit(
        as_json,
        record,
        lambda: click.echo(json.dumps(record["definition"], ensure_ascii=False, indent=2)),
    )


@segment.command("delete")
@shop_option
@name_option
@json_option
@click.pass_context
def segment_delete(ctx: click.Context, shop_id: int, name: str, as_json: bool) -> None:
    """Delete a saved segment (refused while another segment refers to it)."""
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            await shop_or_fail(session, shop_id)
            if not await delete_segment(session=session, shop_id=shop_id, name=name):
                raise NotFound(f"shop {shop_id} has no segment named {name!r}")
        return {"shop_id": shop_id, "name": name, "deleted": True}

    record = _segment_errors(lambda: run(with_database(settings, work)))
    emit(as_json, record, lambda: click.echo(f"segment {name!r} deleted"))


@segment.command("preview")
@shop_option
@click.option("--name", default=None, help="A saved segment's name.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A JSON file with a definition.",
)
@click.option("--sample", default=10, show_default=True, type=click.IntRange(0, 1000))
@json_option
@click.pass_context
def segment_preview(
    ctx: click.Context,
    shop_id: int,
    name: str | None,
    file: Path | None,
    sample: int,
    as_json: bool,
) -> None:
    """Count who a segment holds now, with a sample and the split by locale and stage."""
    if (name is None) == (file is None):
        raise UsageProblem("give either --name of a saved segment or --file with a definition")
    settings = settings_from(ctx)
    definition = read_json_file(file) if file is not None else None

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
            wanted = definition
            if wanted is None:
                found = await get_segment(session=session, shop_id=shop_id, name=name or "")
                if found is None:
                    raise NotFound(f"shop {shop_id} has no segment named {name!r}")
                wanted = member_of(found.name)
                if isinstance(found.definition, dict) and "reachable_only" in found.definition:
                    wanted["reachable_only"] = found.definition["reachable_only"]
            preview = await preview_audience(
                session=session,
                shop_id=shop_id,
                definition=wanted,
                now=utc_now(),
                sample=sample,
            )
        return {
            "shop_id": shop_id,
            "count": preview.count,
            "by_locale": preview.by_locale,
            "by_stage": preview.by_stage,
            "sample": preview.sample,
        }

    result = _segment_errors(lambda: run(with_database(settings, work)))

    def human() -> None:
        click.echo(f"{result['count']} customers")
        for title, split in (("by locale", result["by_locale"]), ("by stage", result["by_stage"])):
            parts = ", ".join(f"{key} {count}" for key, count in sorted(split.items()))
            click.echo(f"  {title}: {parts or '-'}")
        for person in result["sample"]:
            label = person["name"] or "(no name)"
            click.echo(f"  #{person['id']} {label} [{person['locale'] or '-'}, {person['stage']}]")

    emit(as_json, result, human)
