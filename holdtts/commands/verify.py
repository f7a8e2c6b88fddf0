"""`holdtts verify`: recompute committed results from their per-utterance rows."""
from __future__ import annotations

import sys

import click


@click.command(name="verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", is_flag=True, help="Print only the folders that differ, and the totals.")
def command(paths, quiet):
    """Recompute every attack result (metrics.json from rows.tsv) and the per-utterance quality statistics
    (quality.json from quality.tsv) found at or under PATHS, and name every value that differs.

    \b
    attack   the whole metrics.json: every cell's AUROC, TPR at low FPR and bootstrap interval, the
             held-out headline and the permutation p-value, with the seeds and counts the file records
    quality  WER/CER counts, rates and intervals of every recogniser, DNSMOS means, MCD mean and spread,
             mean speaker cosine; FD and KID need embeddings that are not committed and are listed as
             not checked

    A summary without its rows, or one an older holdtts wrote without the settings it was computed with,
    is listed as NOT CHECKED. Exits 1 when any value differs. Example: holdtts verify docs/study docs/demo_run
    """
    from holdtts.report.verify import verify

    checks = verify(list(paths))
    if not checks:
        raise click.ClickException(f"no metrics.json + rows.tsv or quality.json + quality.tsv under {', '.join(paths)}")
    failed = checked = skipped = 0
    unchecked: set[str] = set()
    for check in checks:
        kind, folder = check.kind, check.path
        checked += check.checked
        unchecked.update(check.unchecked)
        if check.not_checkable:
            skipped += 1
            click.echo(f"NOT CHECKED {kind:7s} {folder}: {check.not_checkable}")
        elif check.mismatches:
            failed += 1
            click.echo(f"DIFFERS  {kind:7s} {folder}")
            for line in check.mismatches:
                click.echo(f"    {line}")
        elif not quiet:
            click.echo(f"ok       {kind:7s} {folder} ({check.checked} values)")
    click.echo(f"{len(checks) - failed - skipped} of {len(checks)} result folders recompute exactly from their rows "
               f"({checked} values compared)"
               + (f"; {skipped} could not be checked" if skipped else "")
               + (f"; not checkable from rows: {', '.join(sorted(unchecked))}" if unchecked else ""))
    if failed:
        sys.exit(1)
