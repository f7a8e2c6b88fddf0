"""The `holdtts` command: one sub-command per recipe stage.

Sub-commands live in holdtts/commands/<name>.py and are imported only when run, so `holdtts --help`
stays fast and a broken optional dependency cannot break unrelated stages.
"""
from __future__ import annotations

import importlib
import logging
import sys

import click

from holdtts.errors import HoldttsError

# name -> (module, one-line help). Listed in recipe order.
COMMANDS: dict[str, tuple[str, str]] = {
    "make-corpus": ("holdtts.commands.make_corpus",
                    "Synthesize the offline mini corpus (LJSpeech format, one or more speakers) with eSpeak NG."),
    "download": ("holdtts.commands.download",
                 "Download and verify LJSpeech 1.1, VCTK 0.92 or LibriTTS (resumable, checksummed)."),
    "import-corpus": ("holdtts.commands.import_corpus",
                      "VCTK or LibriTTS in its own layout -> the multi-speaker corpus prepare reads."),
    "prepare": ("holdtts.commands.prepare", "Corpus -> Kaldi-style tables and the membership splits."),
    "features": ("holdtts.commands.features", "Extract log-mel features and token sequences into dump/."),
    "train": ("holdtts.commands.train", "Train a system from its YAML config (resumes an existing experiment)."),
    "train-vocoder": ("holdtts.commands.train_vocoder", "Train a HiFi-GAN vocoder on the member audio (resumable)."),
    "synthesize": ("holdtts.commands.synthesize", "Text to wavs and mels with a trained system."),
    "vocode": ("holdtts.commands.vocode", "Log-mel .npy files to 16-bit wavs with Griffin-Lim or a HiFi-GAN."),
    "attack": ("holdtts.commands.attack", "Membership-inference attacks on a trained system (rows + metrics)."),
    "build-recognizer": ("holdtts.commands.build_recognizer",
                         "Build the mini corpus's eSpeak (or domain) recogniser for evaluate now (cached)."),
    "evaluate": ("holdtts.commands.evaluate", "Audio quality on the non-member test sentences."),
    "report": ("holdtts.commands.report", "Privacy beside audio quality for every system: report.md, figures."),
    "toy-study": ("holdtts.commands.toy_study", "The Swiss-roll membership study: vp and HOLD++ orders 2-4."),
    "verify": ("holdtts.commands.verify",
               "Recompute committed attack metrics and quality summaries from their per-utterance rows."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return module.command

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands (recipe stages, in order)"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="holdtts")
def cli(verbose: int) -> None:
    """holdtts: privacy-hardened diffusion text-to-speech.

    Train Grad-TTS-like models with an order-1 or HOLD++ (order n) diffusion decoder, train the
    dual-model defenses, attack every model with membership-inference attacks, and report privacy
    beside audio quality. Each sub-command is one stage of the recipe in egs/ljspeech/run.sh; run
    `holdtts COMMAND --help` for what a stage reads and writes.
    """
    level = logging.WARNING - 10 * (verbose + 1)
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="holdtts", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except HoldttsError as err:
        click.echo(f"holdtts: error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
