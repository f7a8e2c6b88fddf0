"""Report pieces for the quality metrics of issue 13: the reference (ceiling) rows, the sanity table with
its flagged metrics, kernel distances with their intervals, the Frechet distance against n, and every
sample size. Plain functions: `quality_summary` gathers JSON-able numbers, `quality_sections` renders
them as markdown. The report calls both (holdtts.report.markdown wires them in).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from holdtts.errors import InputError
from holdtts.quality.sanity import CONDITIONS, SANITY_METRICS, _lookup

REFERENCE_DIR = "reference"  # exp/reference: `holdtts evaluate --reference-only --out-dir exp/reference`
ROWS = ("real", "vocoded")


def _read(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read ({err})", path) from err
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path)
    return value


def _metric_values(quality: dict) -> dict:
    """The set-level numbers of one quality.json that the tables print, with their sample sizes."""
    out = {}
    for metric in SANITY_METRICS:
        value = _lookup(quality, metric.path)
        if value is not None:
            out[metric.key] = value
    for name in ("fd_speaker", "fd_logmel", "kid_speaker", "kid_logmel"):
        entry = quality.get(name)
        if isinstance(entry, dict):
            out[f"{name}_n"] = [entry.get("n_generated"), entry.get("n_reference"), entry.get("unit")]
            if name.startswith("kid"):
                out[f"{name}_interval"] = entry.get("interval")
                out[f"{name}_subsets"] = entry.get("subsets")
            else:
                vs_n = entry.get("vs_n") or {}
                out[f"{name}_inf"] = vs_n.get("fd_inf")
                out[f"{name}_slope"] = vs_n.get("slope")
    for name in ("wer", "wer_domain", "wer_espeak"):
        entry = (quality.get(name) or {}).get("generated")
        if isinstance(entry, dict):
            out[f"{name}_n"] = [entry.get("utterances"), entry.get("words"), entry.get("chars")]
            out[f"{name}_interval"] = entry.get("wer_interval")  # absent in quality.json written before them
            out[f"{name.replace('wer', 'cer', 1)}_interval"] = entry.get("cer_interval")
    if isinstance(quality.get("wer_espeak"), dict):  # which build of the recogniser scored it (None: not recorded)
        out["espeak_weights"] = quality["wer_espeak"].get("weights_sha256")
    if isinstance(quality.get("mcd"), dict):
        out["mcd_n"] = quality["mcd"].get("n")
    out["n_utterances"] = quality.get("n_utterances")
    out["nonfinite"] = quality.get("nonfinite_syntheses")  # absent before the rule: not known, not zero
    return out


def quality_summary(records: Iterable = (), exp_dir: str | Path | None = None) -> dict:
    """records: objects with `.name` and `.quality` (the system's quality.json, or None), e.g. the report's
    SystemRecords. exp_dir: where exp/reference/ (the --reference-only output) is looked for.
    Returns {"systems": {name: numbers}, "reference": {row: numbers} or None, "sanity": table or None,
    "flagged": [metric keys]}."""
    systems = {r.name: _metric_values(r.quality) for r in records if getattr(r, "quality", None)}
    reference = sanity = None
    if exp_dir is not None:
        root = Path(exp_dir) / REFERENCE_DIR
        rows = {row: _read(root / row / "quality.json") for row in ROWS}
        if any(rows.values()):
            reference = {row: _metric_values(q) for row, q in rows.items() if q}
        sanity = _read(root / "sanity.json")
    flagged = [k for k, e in (sanity or {}).get("metrics", {}).items() if not e.get("ranks_correctly", False)]
    # the second column: each system at its own sampler, beside the same system at the common one
    own_sampler = {r.name: {"common": {**systems[r.name], **_sampler(r.quality)},
                            "own": {**_metric_values(r.quality_own), **_sampler(r.quality_own)}}
                   for r in records if getattr(r, "quality_own", None) and getattr(r, "quality", None)}
    return {"systems": systems, "reference": reference, "sanity": sanity, "flagged": flagged,
            "own_sampler": own_sampler}


def _sampler(quality: dict) -> dict:
    return {"sampler": quality.get("sampler"), "steps": quality.get("steps")}


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float) and abs(value) < 1e-3 and value != 0:
        return f"{value:.2e}"
    return f"{value:.{digits}g}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _cell(key: str, numbers: dict, flagged: set) -> str:
    value = numbers.get(key)
    text = _pct(value) if key.startswith(("wer", "cer")) else _num(value)
    return text + (" (!)" if key in flagged and value is not None else "")


_COLUMNS = (("fd_speaker", "FD spk"), ("kid_speaker", "KID spk"), ("fd_logmel", "FD mel"),
            ("fd_logmel_inf", "FD_inf mel"), ("kid_logmel", "KID mel"), ("dnsmos_ovrl", "DNSMOS"),
            ("wer_espeak", "WER esp"), ("cer_espeak", "CER esp"), ("wer_domain", "WER dom"),
            ("cer_domain", "CER dom"), ("wer", "WER gen"), ("cer", "CER gen"), ("mcd", "MCD"))


def _sizes(numbers: dict) -> str:
    parts = []
    for name, label in (("fd_speaker_n", "speaker"), ("fd_logmel_n", "log-mel")):
        n = numbers.get(name)
        if n:
            parts.append(f"{label} {n[0]} vs {n[1]} {n[2]}")
    for name, label in (("kid_speaker", "KID spk"), ("kid_logmel", "KID mel")):
        interval = numbers.get(f"{name}_interval")
        if interval:
            parts.append(f"{label} [{_num(interval[0])}, {_num(interval[1])}] ({numbers.get(f'{name}_subsets')} "
                         "subsets of half the utterances)")
    n = numbers.get("wer_espeak_n") or numbers.get("wer_domain_n") or numbers.get("wer_n")
    if n:
        parts.append(f"WER {n[0]} utterances, {n[1]} words, {n[2]} characters")
    rates = [(f"{kind}{suffix}", f"{kind.upper()} {label}") for suffix, label in
             (("_espeak", "esp"), ("_domain", "dom"), ("", "gen")) for kind in ("wer", "cer")]
    shown = [(label, numbers[f"{key}_interval"]) for key, label in rates if numbers.get(f"{key}_interval")]
    parts += [f"{label} [{_pct(low)}, {_pct(high)}]" for label, (low, high) in shown]
    if shown:
        parts.append("WER/CER intervals: 95% bootstrap over utterances")
    return "; ".join(parts)


def _recogniser_builds(rows: list) -> list[str]:
    """A warning when the eSpeak WER of these rows comes from more than one build of its recogniser: a build
    on another machine may give other weights under the same fingerprint (quality.json's weights_sha256)."""
    builds: dict[str, list[str]] = {}
    for name, numbers in rows:
        if "espeak_weights" in numbers:
            weights = numbers["espeak_weights"]
            builds.setdefault(weights[:12] if weights else "not recorded", []).append(name)
    if len(builds) < 2:
        return []
    listed = "; ".join(f"{weights}: {', '.join(names)}" for weights, names in builds.items())
    return ["", f"**WER esp and CER esp come from {len(builds)} builds of the eSpeak recogniser** (weights "
            f"checksum: systems; {listed}). Compare those columns only within one build; the reference rows "
            "of each quality.json show how its build reads real speech."]


def _own_sampler_section(own: dict, flagged: set) -> list[str]:
    """Each system that has it at its own sampler (evaluate_own/), the row above it at the common one."""
    if not own:
        return []
    rows = [(f"{name} ({side}: {n.get('sampler')}, {n.get('steps')} steps)", n)
            for name, pair in own.items() for side, n in (("common", pair["common"]), ("own", pair["own"]))]
    shown = [(key, label) for key, label in _COLUMNS if any(numbers.get(key) is not None for _, numbers in rows)]
    out = ["", "### Quality at each system's own sampler", "",
           "The table above holds every system to one sampler and step count; here each system that has its own "
           "(its config's synthesis section, evaluate_own/) is measured with it too, on the same sentences, "
           "vocoder and seed. Systems whose own sampler is the common one have no second row.", "",
           "| system | " + " | ".join(label for _, label in shown) + " |", "|---|" + "---|" * len(shown)]
    out += [f"| {name} | " + " | ".join(_cell(key, numbers, flagged) for key, _ in shown) + " |"
            for name, numbers in rows]
    return out


def quality_sections(summary: dict) -> str:
    """Markdown: the quality table with the reference rows first, sample sizes and KID intervals under
    it, then the sanity table with its flagged metrics."""
    flagged = set(summary.get("flagged") or [])
    rows = [(f"reference: {row}", numbers) for row, numbers in (summary.get("reference") or {}).items()]
    rows += list((summary.get("systems") or {}).items())
    shown = [(key, label) for key, label in _COLUMNS if any(numbers.get(key) is not None for _, numbers in rows)]
    out = ["## Quality with sample sizes", ""]
    if not rows:
        return "\n".join(out + ["No quality results.", ""])
    recognisers = {"wer_espeak": "WER esp: the mini corpus's eSpeak recogniser (a CTC model trained on eSpeak NG "
                                 "speech)",
                   "wer_domain": "WER dom: its domain recogniser (pocketsphinx with the generator's 3-gram)",
                   "wer": "WER gen: pocketsphinx's generic model (the one that transfers to human speech)"}
    described = "; ".join(text for key, text in recognisers.items() if key in dict(shown))
    out.append("Lower is better except DNSMOS. FD: Frechet distance (biased upward at small n; FD_inf: its "
               "extrapolation to infinite n where it can be fitted); KID: unbiased kernel distance, comparable "
               f"across n.{' ' + described + '.' if described else ''} Reference rows: real test "
               "recordings, raw and through the vocoder, against other real non-members "
               "(`holdtts evaluate --reference-only`). "
               "(!) marks a metric the sanity table flags.")
    out += ["", "| system | " + " | ".join(label for _, label in shown) + " |",
            "|---|" + "---|" * len(shown)]
    for name, numbers in rows:
        out.append(f"| {name} | " + " | ".join(_cell(key, numbers, flagged) for key, _ in shown) + " |")
    out += ["", "Sample sizes and intervals:", ""]
    out += [f"- {name}: {_sizes(numbers) or 'not stated'}" for name, numbers in rows]
    out += _recogniser_builds(rows)
    own_rows = [(f"{name} (own sampler)", pair["own"]) for name, pair in (summary.get("own_sampler") or {}).items()]
    diverged = [(name, numbers) for name, numbers in rows + own_rows if numbers.get("nonfinite")]
    if diverged:
        listed = "; ".join(f"{name}: {n['nonfinite']} of {n.get('n_utterances')}" for name, n in diverged)
        out += ["", f"**Syntheses that diverged** (NaN or infinite values, scored as the silence they were made, "
                f"holdtts.data.mel.silence_nonfinite): {listed}. They count against the system in every column."]
    out += _own_sampler_section(summary.get("own_sampler") or {}, flagged)
    sanity = summary.get("sanity")
    out += ["", "## Sanity table", ""]
    if not sanity:
        out += ["No sanity table (run `holdtts evaluate --reference-only`).", ""]
        return "\n".join(out)
    out.append(f"Each metric on audio of known quality, {sanity.get('n_test')} test sentences against "
               f"{sanity.get('n_reference')} other real recordings, vocoder {sanity.get('vocoder')}: real, "
               f"through the vocoder, degraded (white noise at {sanity.get('noise_snr_db')} dB SNR; time "
               f"stretch x{sanity.get('stretch_rate')}), garbage (wrong sentence: text and pair metrics only; "
               "random mels). Each tier must beat the next; a metric that does not is flagged. A pair in the "
               "wrong order whose paired bootstrap interval (over the test sentences) contains 0 is a tie: the "
               "metric cannot separate those two conditions at this sample size, which is not a failure.")
    conditions = [c for c in CONDITIONS if any(c in e["values"] for e in sanity["metrics"].values())]
    out += ["", "| metric | " + " | ".join(conditions) + " | ranks correctly |",
            "|---|" + "---|" * (len(conditions) + 1)]
    for key, entry in sanity["metrics"].items():
        fmt = _pct if key.startswith(("wer", "cer")) else _num
        cells = [fmt(entry["values"].get(c)) if c in entry["values"] else "n/a" for c in conditions]
        ties = entry.get("ties") or []
        if not entry["ranks_correctly"]:
            verdict = "**FLAGGED**: " + "; ".join(entry["failures"][:2])
        elif ties:
            verdict = "yes, with ties (not separated at this n): " + "; ".join(ties[:2])
        else:
            verdict = "yes"
        out.append(f"| {entry['label']} | " + " | ".join(cells) + f" | {verdict} |")
    if flagged:
        out += ["", f"Flagged (do not read these as quality rankings here): {', '.join(sorted(flagged))}."]
    out.append("")
    return "\n".join(out)
