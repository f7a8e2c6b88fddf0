"""`holdtts attack`: membership-inference attacks on a trained system."""
from __future__ import annotations

import importlib
import json

import click


def _parse_grids(values) -> dict[str, list[float]]:
    grids = {}
    for value in values:
        if "=" not in value:
            raise click.BadParameter(f"'{value}': expected NAME=T1,T2,...", param_hint="--t-grid")
        name, points = value.split("=", 1)
        try:
            grids[name.strip()] = [float(p) for p in points.split(",") if p.strip()]
        except ValueError as err:
            raise click.BadParameter(f"'{value}': times must be numbers", param_hint="--t-grid") from err
    return grids


def parse_attack_params(values) -> dict[str, dict]:
    """--param ATTACK.NAME=VALUE options as {attack: {name: value}} (values read as YAML)."""
    import yaml

    params: dict[str, dict] = {}
    for value in values:
        try:
            key, raw = value.split("=", 1)
            attack, name = key.split(".", 1)
        except ValueError as err:
            raise click.BadParameter(f"'{value}': expected ATTACK.PARAM=VALUE", param_hint="--param") from err
        params.setdefault(attack, {})[name] = yaml.safe_load(raw)
    return params


def check_member_list(model, data_dir) -> None:
    """Refuse to attack a model whose member list (recorded in its checkpoint) is not the current split's:
    the splits were remade since, so its 'non-members' may be its training data. A checkpoint from before
    the checksum was recorded gets a warning. A DualMD pipeline is checked teacher by teacher."""
    from pathlib import Path

    from holdtts.data.splits import split_checksum
    from holdtts.errors import MembershipMismatchError
    from holdtts.utils.checkpoint import load_checkpoint

    for part in list(getattr(model, "teachers", None) or [model]):
        state = getattr(part, "checkpoint_state", {}) or {}
        recorded = state.get("members_sha256")
        if recorded is None and "members_sha256" not in state and Path(part.checkpoint).is_file():
            recorded = load_checkpoint(part.checkpoint).get("members_sha256")  # loaders that do not keep it
        split = state.get("train_split") or "members"
        if recorded is None:
            click.echo(f"warning: {part.checkpoint}: an older checkpoint without its member list's checksum; "
                       f"cannot check that '{split}' in {data_dir} is still the split it was trained on", err=True)
            continue
        current = split_checksum(data_dir, split)
        if current != recorded:
            raise MembershipMismatchError(
                f"{part.checkpoint}: trained on another member list than {Path(data_dir) / split} holds now "
                f"(sha256 {recorded[:12]}... then, {current[:12]}... now): the splits were remade after "
                "training, so some 'non-members' may be its training data. Retrain it on the current splits, "
                "or attack with the data directory it was trained on.")


def check_speaker_table(model, data_dir) -> None:
    """Refuse a data directory whose spk2id is not the one the model (each DualMD teacher) was trained with."""
    from holdtts.data.speaker_map import check_checkpoint_speakers, read_speaker_map

    speakers = read_speaker_map(data_dir)
    for part in list(getattr(model, "teachers", None) or [model]):
        if getattr(part, "n_speakers", 1) == 1:
            continue  # a single-speaker model takes no speaker (on multi-speaker data its rows still carry them)
        check_checkpoint_speakers((getattr(part, "checkpoint_state", {}) or {}).get("speakers"), speakers,
                                  str(part.checkpoint))


def import_plugins(modules) -> None:
    """Import each --plugin module; the current directory is searched first, as `python -m` would."""
    import os
    import sys

    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # the plugin is there, something it imports is not
                raise click.UsageError(f"--plugin {module}: importing it failed ({err})") from err
            raise click.UsageError(f"--plugin {module}: cannot import it ({err}); give a module name importable "
                                   "from the current directory or the environment, e.g. my_attacks for "
                                   "./my_attacks.py") from err


@click.command(name="attack")
@click.option("--model", "model_path", type=click.Path(exists=True),
              help="Experiment directory (latest checkpoint) or checkpoint file. Required unless --list.")
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Writes rows.tsv (one row per utterance, attack and t), metrics.json and attack.json. "
                   "Required unless --list.")
@click.option("--attack", "attacks", default="all", show_default=True,
              help="Comma-separated attack names (see --list); 'all' runs every built-in attack that applies "
                   "(loss, secmi, pia, pian, sima, the Monte-Carlo variants for order >= 2, duration, prior).")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False))
@click.option("--dump-dir", default="dump", show_default=True, type=click.Path(file_okay=False))
@click.option("--members", "member_split", default=None,
              help="Member split (default: the split the model was trained on, from its checkpoint).")
@click.option("--nonmembers", "nonmember_split", default="nonmembers", show_default=True)
@click.option("--max-utts", type=int, default=None, help="At most this many members and as many non-members.")
@click.option("--t-grid", "t_grids", multiple=True, metavar="NAME=T1,T2",
              help="Override an attack's t grid (fractions of the horizon), e.g. --t-grid pia=0.1,0.3.")
@click.option("--param", "params", multiple=True, metavar="ATTACK.NAME=VALUE",
              help="Override an attack parameter, e.g. --param loss.draws=8 --param pia.p=2.")
@click.option("--speaker-condition", type=click.Choice(["own", "mean"]), default=None,
              help="A multi-speaker model's speaker condition: each utterance under its own speaker's row (own), "
                   "or every utterance under the model's mean voice (mean). Default: mean under splits.json's "
                   "speaker protocol (non-member speakers have no row), own under the utterance protocol.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seed", default=1234, show_default=True, help="Crops and every noise draw derive from it.")
@click.option("--bootstrap", "bootstrap_samples", default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@click.option("--device", default="auto", show_default=True)
@click.option("--raw-weights", is_flag=True, help="Attack the raw trained weights instead of the EMA ones.")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
              help="Import a Python module that registers attacks with @holdtts.privacy.register_attack.")
@click.option("--overwrite", is_flag=True, help="Replace an existing rows.tsv/metrics.json.")
@click.option("--list", "list_only", is_flag=True, help="List the registered attacks and exit.")
def command(model_path, out_dir, attacks, data_dir, dump_dir, member_split, nonmember_split, max_utts,
            t_grids, params, speaker_condition, batch_size, seed, bootstrap_samples, device, raw_weights, plugins,
            overwrite, list_only):
    """Attack a trained system with membership-inference attacks: its training split (members) against
    non-members it never saw, the published way (mu aligned to the real mel, 2-second crops, fixed seed).

    Every attack sweeps t over a grid given as fractions of the process's horizon (so one grid serves
    order 1 and order n). Scores: higher means "more likely a member". Metrics (AUROC, ASR, TPR at 1% and
    0.1% FPR with bootstrap 95% intervals per t; the held-out headline: strongest attack and t picked on a
    calibration half, measured on the test half, with a permutation p-value) are computed from
    rows.tsv alone; `holdtts report` collects them.
    """
    from pathlib import Path

    from holdtts import load_model  # imports the defenses, so their loaders are registered
    from holdtts.data.dataset import FeatureStore
    from holdtts.data.features import resolve_device
    from holdtts.privacy.attacks import ATTACKS, load_plugins
    from holdtts.privacy.runner import AttackTarget, attack_experiment, log_metrics_to_tensorboard
    from holdtts.utils.fileio import refuse_overwrite

    import_plugins(plugins)
    load_plugins()
    if list_only:
        for name, attack in sorted(ATTACKS.items()):
            grid = "no t" if attack.t_grid is None else "t " + ",".join(f"{t:g}" for t in attack.grid())
            click.echo(f"{name:10s} {grid:32s} {attack.description}")
        return
    for value, option in ((model_path, "--model"), (out_dir, "--out-dir")):
        if value is None:
            raise click.UsageError(f"Missing option '{option}' (needed unless --list).")
    refuse_overwrite(Path(out_dir) / "metrics.json", overwrite, "attack results")
    torch_device = resolve_device(device)
    model = load_model(model_path, device=torch_device, ema=not raw_weights)
    check_member_list(model, data_dir)
    check_speaker_table(model, data_dir)
    member_split = member_split or model.checkpoint_state.get("train_split", "members")
    target = AttackTarget.from_splits(data_dir, member_split, nonmember_split, max_utts, seed)
    from holdtts.privacy.attacks import DEFAULT_ATTACKS

    names = list(DEFAULT_ATTACKS) if attacks == "all" else [a.strip() for a in attacks.split(",") if a.strip()]
    meta = {"model": str(model.checkpoint), "step": model.step, "system": model.config.name,
            "order": model.process.order, "weights": "raw" if raw_weights else "ema",
            "member_split": member_split, "nonmember_split": nonmember_split}
    metrics = attack_experiment(model, FeatureStore(dump_dir), target, out_dir, names, _parse_grids(t_grids),
                                batch_size, seed, bootstrap_samples, parse_attack_params(params),
                                progress=True, meta=meta, speaker_condition=speaker_condition)
    checkpoint = Path(model.checkpoint)  # <exp>/checkpoints/step-N.pt, or a composite system's directory
    experiment = checkpoint if checkpoint.is_dir() else checkpoint.parent.parent
    if (experiment / "tensorboard").is_dir():
        log_metrics_to_tensorboard(metrics, experiment / "tensorboard", model.step, f"attack/{Path(out_dir).name}")
    h = metrics["headline"]
    verdict = "leakage detected" if h["detected"] else "not detected at this sample size"
    summary = {"headline": {k: h[k] for k in ("attack", "t", "direction", "auroc", "auroc_ci", "p_value")},
               "verdict": f"{verdict} (p = {h['p_value']:.3g})"}
    level = metrics.get("speaker_level")
    if level and level.get("available"):
        s = level["headline"]
        summary["speaker_level"] = {k: s[k] for k in ("attack", "t", "aggregate", "direction", "auroc", "auroc_ci",
                                                      "p_value")}
    click.echo(json.dumps(summary))
