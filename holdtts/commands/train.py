"""`holdtts train`: train a system from its YAML config (resumes an existing experiment)."""
from __future__ import annotations

import json
import sys

import click


@click.command(name="train")
@click.option("--config", "configs", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="System config (conf/vp.yaml, conf/hold3.yaml, ...). Repeat to layer files: later ones "
                   "override earlier ones (e.g. --config conf/hold3.yaml --config conf/tiny.yaml).")
@click.option("--exp-dir", type=click.Path(file_okay=False),
              help="Experiment directory: checkpoints, TensorBoard logs, config.yaml. An existing one is "
                   "resumed from its latest checkpoint. Required unless --print-config or --print-value.")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Tables and splits from `holdtts prepare`.")
@click.option("--dump-dir", default="dump", show_default=True, type=click.Path(file_okay=False),
              help="Features from `holdtts features`.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config value, e.g. --set train.max_steps=20000 (repeatable).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@click.option("--print-config", is_flag=True,
              help="Print the config the layered files and --set values make (YAML, every key) and exit "
                   "without training or writing anything.")
@click.option("--print-value", metavar="SECTION.KEY",
              help="Print one value of that config, as it is (e.g. defense.teachers_dir), and exit.")
def command(configs, exp_dir, data_dir, dump_dir, device, overrides, progress, print_config, print_value):
    """Train a Grad-TTS-like system on its training split (the members, or one half for the
    dual-model teachers), with EMA weights, gradient clipping, mixed precision on the GPU (train.precision)
    and periodic validation loss.

    Checkpoints (model, EMA, optimizer, scheduler, step, RNG states, config, symbol table, process) are
    written atomically every train.checkpoint_every steps and on exit (Ctrl-C or SIGTERM save first);
    running the same command again resumes exactly where it stopped. Watch it with
    `tensorboard --logdir EXP_DIR/tensorboard`.

    Exit status: 0 when training reached its step/epoch limit; 130 (SIGINT) or 143 (SIGTERM) when a
    signal stopped it after saving a checkpoint, so scripts and the recipe do not take it for finished.
    One training at a time per experiment directory: a second one fails at once, naming the PID holding
    EXP_DIR/.lock. Resuming onto remade splits (another member list) is refused.

    Several GPUs or nodes: `torchrun --nproc_per_node 4 -m holdtts.cli train ...` (DistributedDataParallel;
    train.batch_size is per process).
    """
    from holdtts.commands import report_training
    from holdtts.config import load_config
    from holdtts.training.factory import make_trainer
    from holdtts.training.loop import StopNow

    cfg = load_config(list(configs), overrides)  # range-checked: a bad value writes nothing
    if print_config:
        from holdtts.config import dump_config

        click.echo(dump_config(cfg), nl=False)
        return
    if print_value:
        from holdtts.config import config_to_dict

        value = config_to_dict(cfg)
        for part in print_value.split("."):
            if not isinstance(value, dict) or part not in value:
                raise click.BadParameter(f"no config key '{print_value}'", param_hint="--print-value")
            value = value[part]
        click.echo(value if isinstance(value, str) else json.dumps(value))
        return
    if not exp_dir:  # optional only for --print-config and --print-value
        raise click.UsageError("Missing option '--exp-dir'.")
    try:
        if cfg.defense.kind != "none":  # two teachers on the halves (+ a student): holdtts.defenses
            from holdtts.defenses import defense_training

            summary = defense_training(cfg, exp_dir, data_dir, dump_dir, device=device,
                                       progress_bar=progress).run()
        else:
            summary = make_trainer(cfg, exp_dir, data_dir, dump_dir, device=device, progress_bar=progress).run()
    except StopNow as stop:  # a second signal: stopped without the final checkpoint
        click.echo("interrupted again: stopped without saving (the last checkpoint is kept)", err=True)
        sys.exit(128 + stop.signum)
    report_training(summary)
