"""`holdtts toy-study`: the HOLD++ defense paper's Swiss-roll membership experiment on the CPU."""
from __future__ import annotations

import click

from holdtts.commands.attack import parse_attack_params

# the defaults live in holdtts.toy.study.StudyConfig; repeated here only for --help (a test checks they agree)
DEFAULTS = {"orders": "1,2,3,4", "betas": "0.5,2,10", "seeds": "0,1,2", "members": 16, "nonmembers": 256,
            "heldout": 2000, "noise": 0.5, "data_seed": 0, "width": 64, "depth": 4,
            "fourier_features": 64, "fourier_scale": 8.0, "steps": 8000,
            "batch_size": 64, "lr": 2e-3, "ema": 0.99, "horizon": 5.0,
            "attacks": "loss,secmi,pia,pian,sima,pia_mc,sima_mc,secmi_mc", "attack_seed": 1234,
            "bootstrap": 1000, "permutations": 1000, "sampler": "splitting", "sample_steps": 100,
            "samples": 2000, "mmd_subsets": 10, "mmd_bandwidth": 0.2}


def _numbers(value: str, kind, option: str) -> tuple:
    try:
        out = tuple(kind(v) for v in value.split(",") if v.strip())
    except ValueError as err:
        raise click.BadParameter(f"'{value}': expected comma-separated numbers", param_hint=option) from err
    if not out:
        raise click.BadParameter("empty list", param_hint=option)
    return out


def _opt(name: str, help_: str, kind=None):
    return click.option(f"--{name.replace('_', '-')}", name, default=DEFAULTS[name], show_default=True,
                        type=kind, help=help_)


@click.command(name="toy-study")
@click.option("--out-dir", default="exp/toy", show_default=True, type=click.Path(file_okay=False),
              help="Where models/<name>/ and the report go.")
@_opt("orders", "Diffusion orders: 1 is vp (Grad-TTS), n >= 2 HOLD++.")
@_opt("betas", "HOLD++ initial auxiliary variance factors (order 1 has none).")
@_opt("seeds", "Training seeds (initial weights, batches, times, noise).")
@_opt("members", "Training points (the attack's positives).", int)
@_opt("nonmembers", "Points never trained on (the attack's negatives).", int)
@_opt("heldout", "Further points, the reference for sample quality.", int)
@_opt("noise", "Swiss-roll noise (sklearn's units, before standardising).", float)
@_opt("data_seed", "Seed of the point draw (the same members for every model).", int)
@_opt("width", "MLP width.", int)
@_opt("depth", "MLP hidden layers.", int)
@_opt("fourier_features", "Random Fourier features of the state fed to the MLP (0: none).", int)
@_opt("fourier_scale", "Std of those features' frequencies.", float)
@_opt("steps", "Adam steps per model.", int)
@_opt("batch_size", "Points per step (at least the members: the whole member set every step).", int)
@_opt("lr", "Adam learning rate.", float)
@_opt("ema", "EMA decay of the weights that are attacked and sampled (0: raw weights).", float)
@_opt("horizon", "HOLD++'s horizon T (vp keeps Grad-TTS's T = 1).", float)
@_opt("attacks", "Comma-separated attacks of holdtts.privacy.attacks (those that do not apply to an order "
                 "are skipped).")
@click.option("--param", "params", multiple=True, metavar="ATTACK.NAME=VALUE",
              help="Override an attack parameter, e.g. --param pia_mc.draws=4.")
@_opt("attack_seed", "Seed of every attack's noise and of the statistics.", int)
@_opt("bootstrap", "Bootstrap resamples for the AUROC intervals.", int)
@_opt("permutations", "Label permutations for the p-values.", int)
@_opt("sampler", "Sampler of holdtts.diffusion for the quality samples (the same for every order).")
@_opt("sample_steps", "Sampler steps (the same for every order).", int)
@_opt("samples", "Generated points per model for the MMD (against as many held-out points).", int)
@_opt("mmd_subsets", "Disjoint subsets for the MMD's interval.", int)
@_opt("mmd_bandwidth", "RBF kernel width of the MMD (standardised data units).", float)
@click.option("--workers", default=2, show_default=True, type=int,
              help="Models trained at once, one process each (the study is sized for 2 CPU cores).")
@click.option("--threads", default=1, show_default=True, type=int,
              help="torch threads per worker (tiny MLPs: one thread per process uses the cores best).")
@click.option("--only", type=click.Choice(["models", "report"]), default=None,
              help="Only train/attack/sample the models, or only rebuild the report from finished models.")
@click.option("--overwrite", is_flag=True, help="Redo every model, even those already done.")
def command(out_dir, orders, betas, seeds, members, nonmembers, heldout, noise, data_seed, width, depth,
            fourier_features, fourier_scale, steps,
            batch_size, lr, ema, horizon, attacks, params, attack_seed, bootstrap, permutations, sampler,
            sample_steps, samples, mmd_subsets, mmd_bandwidth, workers, threads, only, overwrite):
    """Train order 1 (vp) and HOLD++ orders 2-4 on a small member set of 2-D Swiss-roll points, for every
    beta and seed; attack every model with the speech models' attack code; measure sample quality by an
    unbiased RBF-kernel MMD^2 to held-out points. Resumable: a model whose outputs exist with the same
    settings is skipped. Writes, in OUT_DIR:

    \b
      models/<name>/   model.pt, rows.tsv, metrics.json, samples.npy, model.json
      results.tsv      one row per model: held-out headline attack, t, AUROC, interval, p;
                       held-out PIA; the in-sample maximum (optimistic); MMD^2 with interval
      summary.md       per order and beta across seeds, each HOLD++ system against vp,
                       the paper's ordering per beta; summary.json the same for machines
      samples_beta<b>.png   samples per order beside the held-out data
      study.json       settings, timing, machine, date
    """
    from holdtts.diffusion import SAMPLERS
    from holdtts.toy import StudyConfig, run_study

    if sampler not in SAMPLERS:
        raise click.BadParameter(f"unknown sampler {sampler!r} (known: {', '.join(sorted(SAMPLERS))})",
                                 param_hint="--sampler")
    cfg = StudyConfig(
        orders=_numbers(orders, int, "--orders"), betas=_numbers(betas, float, "--betas"),
        seeds=_numbers(seeds, int, "--seeds"), members=members, nonmembers=nonmembers, heldout=heldout,
        noise=noise, data_seed=data_seed, width=width, depth=depth, fourier_features=fourier_features,
        fourier_scale=fourier_scale, steps=steps, batch_size=batch_size, lr=lr,
        ema=ema, horizon=horizon, attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()),
        attack_params=parse_attack_params(params), attack_seed=attack_seed, bootstrap=bootstrap,
        permutations=permutations,
        sampler=sampler, sample_steps=sample_steps, samples=samples, mmd_subsets=mmd_subsets,
        mmd_bandwidth=mmd_bandwidth)
    result = run_study(cfg, out_dir, overwrite=overwrite, only=only, workers=workers, threads=threads)
    timing = result["timing"]
    click.echo(f"{out_dir}: {timing['models']} model(s), {timing['models_run']} run now, "
               f"{timing['wall_s']:.0f} s wall")
    if only != "models":
        for beta, verdicts in result["ordering"].items():
            for key, label in (("pia_auroc", "PIA"), ("headline_auroc", "strongest attack")):
                verdict = verdicts.get(key)
                if verdict:
                    m = verdict["means"]
                    click.echo(f"beta={beta}, {label}: held-out AUROC n=2 {m[2]:.3f}, n=3 {m[3]:.3f}, n=4 {m[4]:.3f}: "
                               f"ordering 2 > 3 > 4 {'reproduced' if verdict['ordered'] else 'not reproduced'}")
