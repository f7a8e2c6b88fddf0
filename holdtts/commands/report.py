"""`holdtts report`: one report of membership privacy beside audio quality for every system."""
from __future__ import annotations

import click


@click.command(name="report")
@click.option("--exp-dir", default="exp", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="The recipe's experiment directory, one sub-directory per system.")
@click.option("--systems", default=None,
              help="Comma-separated systems, in report order. Default: every sub-directory with "
                   "attack*/metrics.json or evaluate/quality.json (vp, hold2, hold3, hold4, then the rest "
                   "alphabetically).")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Where splits.json is (data sizes and seed for the setup section).")
@click.option("--out-dir", default=None, type=click.Path(file_okay=False),
              help="Where to write the report  [default: EXP_DIR/report]")
@click.option("--overwrite", is_flag=True, help="Replace an existing report.")
@click.option("--preregistered", default=None, type=click.Path(exists=True, dir_okay=False),
              help="JSON of one attack cell per family, fixed before the models were attacked "
                   '({"cells": {"decoder": {"attack": "loss", "t": "0.8", "direction": "as defined"}}}): '
                   "adds the comparisons read at those cells on every shared utterance.")
def command(exp_dir, systems, data_dir, out_dir, overwrite, preregistered):
    """Collect every system's attack results (attack/ and attack_<label>/ directories), quality results
    (evaluate/), training facts and DP guarantee into one report. Writes, in OUT_DIR:

    \b
      report.md           headline table, findings, per-attack tables, figures,
                          how to read each number, the exact setup of every system
      *.png               ROC curves (log-log, recomputed from rows.tsv), AUROC
                          against t, privacy against quality, AUROC during training
      report.json         every number in the tables, for machines
      headline.tsv        the headline table

    The first table compares every system with its baseline (vp; for a defense of order n also the plain
    order-n system): held-out AUROC difference with a paired bootstrap interval and p-value, across
    training seeds (exp/vp, exp/vp.seed2, ... are seeds of vp). A model's headline is its strongest attack
    and t picked on a calibration half of the utterances and measured on the other half, with a
    label-permutation p-value ("leakage detected" or "not detected at this sample size"). Every AUROC in
    metrics.json is checked against its rows.tsv, and the comparisons are computed from the rows.
    """
    from holdtts.report import write_report

    names = None
    if systems is not None:
        names = [s.strip() for s in systems.split(",") if s.strip()]
        if not names:
            raise click.BadParameter("no system named", param_hint="--systems")
    result = write_report(exp_dir, out_dir, names, data_dir, overwrite, preregistered)
    click.echo(f"{result.out_dir / 'report.md'}: {len(result.records)} system(s), "
               f"{len(result.summary['figures'])} figure(s)")
    for line in result.summary["findings"][:2]:
        click.echo(line)
