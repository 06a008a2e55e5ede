"""``shipyard gc``: remove what no run needs any more (today: stage environments unused for a while)."""

from __future__ import annotations

import click

from shipyard.cli.output import echo, print_json


@click.command("gc")
@click.option("--older-than", default="30d", show_default=True, metavar="DURATION",
              help="Remove stage environments no run used for this long (30d, 12h, 0 for all).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--json", "json_out", is_flag=True, help="Print JSON.")
def app(older_than: str, dry_run: bool, json_out: bool) -> None:
    """Remove stage environments (built with uv, shared by every project) that no run used lately.

    Example: shipyard gc --older-than 14d --dry-run
    """
    from shipyard.durations import parse_duration
    from shipyard.errors import UsageError
    from shipyard.pipeline import envs

    try:
        seconds = parse_duration(older_than)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--older-than {older_than!r}: {exc}", hint="a duration such as 30d, 12h or 0") from None
    removed = envs.collect(seconds, dry_run=dry_run)
    total = sum(size for _, size in removed)
    if json_out:
        print_json({"dry_run": dry_run, "removed": [{"path": str(p), "bytes": size} for p, size in removed],
                    "bytes": total})
        return
    verb = "would remove" if dry_run else "removed"
    for path, size in removed:
        echo(f"{verb} {path} ({size / 1e6:.1f} MB)")
    echo(f"{verb} {len(removed)} environment(s), {total / 1e6:.1f} MB, from {envs.cache_root()}")
