"""`holdtts train-vocoder`: train a HiFi-GAN on the member audio (resumes an existing experiment)."""
from __future__ import annotations

import sys

import click


@click.command(name="train-vocoder")
@click.option("--config", "configs", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Vocoder config (conf/vocoder_v1.yaml, conf/vocoder_v2.yaml). Repeat to layer files: "
                   "later ones override earlier ones (e.g. --config conf/vocoder_v1.yaml --config "
                   "conf/vocoder_tiny.yaml).")
@click.option("--exp-dir", required=True, type=click.Path(file_okay=False),
              help="Experiment directory: checkpoints, TensorBoard logs, config.yaml. An existing one is "
                   "resumed from its latest checkpoint.")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Tables and splits from `holdtts prepare` (reads <split>/wav.scp and valid/wav.scp).")
@click.option("--split", default="members", show_default=True,
              help="The clips to train on: members, or half1/half2. nonmembers and test are refused.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config value, e.g. --set train.max_steps=500000 (repeatable).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
def command(configs, exp_dir, data_dir, split, device, overrides, progress):
    """Train a HiFi-GAN vocoder (V1/V2/V3 generator, multi-period and multi-scale discriminators) from
    scratch on random 8192-sample segments of one split's audio, with the paper's recipe: least-squares
    GAN, feature matching x2, mel L1 x45, AdamW 2e-4 betas (0.8, 0.99), learning rate x0.999 per epoch.
    Mels are computed on the fly on the device, in holdtts's (HiFi-GAN's) convention.

    Why train one: the published LJSpeech HiFi-GAN was trained on all of LJSpeech but 150 validation
    clips, so it heard almost every clip Grad-TTS tests on and any LJSpeech non-member. A vocoder for
    privacy experiments must not have heard the non-members; this stage refuses the nonmembers and test
    splits and any split that overlaps them.

    Checkpoints (generator, discriminators, optimizers, schedulers, step, RNG states, config) are written
    atomically every train.checkpoint_every steps and on exit (Ctrl-C or SIGTERM save first); running the
    same command again resumes exactly where it stopped. TensorBoard (EXP_DIR/tensorboard): losses,
    learning rate, validation mel error, audio and mel images of validation clips. Mixed precision on the
    GPU with train.precision=bf16 (or fp16). Several GPUs: `torchrun --nproc_per_node 4 -m holdtts.cli
    train-vocoder ...` (train.batch_size is per process).

    Exit status: 0 when training reached its limit; 130 (SIGINT) or 143 (SIGTERM) when a signal stopped
    it after saving a checkpoint. One training at a time per experiment directory (EXP_DIR/.lock).

    Use the result with `holdtts vocode --vocoder EXP_DIR` or `holdtts synthesize --vocoder EXP_DIR`.
    """
    from holdtts.commands import report_training
    from holdtts.training.loop import StopNow
    from holdtts.training.vocoder import VocoderTrainer, load_vocoder_config

    cfg = load_vocoder_config(list(configs), overrides)
    try:
        summary = VocoderTrainer(cfg, exp_dir, data_dir, split=split, device=device, progress_bar=progress).run()
    except StopNow as stop:
        click.echo("interrupted again: stopped without saving (the last checkpoint is kept)", err=True)
        sys.exit(128 + stop.signum)
    report_training(summary)
