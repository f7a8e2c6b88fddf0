"""The report's speaker section: membership of speakers beside membership of utterances (multi-speaker data).

Read from each attack directory's metrics.json (`protocol`, `speaker_level`, `per_speaker`; computed from
rows.tsv by holdtts.privacy.speakers) and from quality.json's `speaker_similarity` (holdtts.quality.evaluate).
A report without multi-speaker results has no such section.
"""
from __future__ import annotations

DASH = "-"
_HEAD = ("attack", "t", "direction", "auroc", "auroc_ci", "p_value", "detected")


def _head(entry: dict | None, extra: tuple[str, ...] = ()) -> dict | None:
    if not entry:
        return None
    return {k: entry.get(k) for k in (*_HEAD, *extra)}


def speaker_summary(record) -> dict | None:
    """Per attack directory of a system: the protocol, the utterance-level and speaker-level headlines, each
    aggregate's speaker-level headline and (utterance protocol) the spread across speakers."""
    runs = {}
    for run in record.attack_runs:
        metrics = run.metrics
        if "protocol" not in metrics:
            continue
        entry = {"protocol": metrics["protocol"], "num_speakers": metrics.get("num_speakers"),
                 "utterance_level": _head(metrics["headline"])}
        level = metrics.get("speaker_level")
        if level is not None:
            entry["speaker_level"] = {
                "available": level.get("available", False), "note": level.get("note"),
                "num_member_speakers": level.get("num_member_speakers"),
                "num_nonmember_speakers": level.get("num_nonmember_speakers"),
                "headline": _head(level.get("headline"), ("aggregate",)),
                "by_aggregate": {name: _head(part.get("headline"), ("aggregate",))
                                 for name, part in (level.get("by_aggregate") or {}).items()},
            }
        if metrics.get("per_speaker") is not None:
            entry["per_speaker"] = metrics["per_speaker"]
        runs[run.source] = entry
    return runs or None


def _fmt(value, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _auroc(head: dict | None) -> str:
    if not head:
        return DASH
    ci = head.get("auroc_ci")
    interval = "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{head['auroc']:.3f}{interval} (p = {head['p_value']:.3g})"


def _pick(head: dict | None) -> str:
    if not head:
        return DASH
    t = "" if head["t"] == "-" else f" t={head['t']}"
    aggregate = f", {head['aggregate']}" if head.get("aggregate") else ""
    reversed_ = "" if head.get("direction") in (None, "as defined") else ", reversed"
    return f"{head['attack']}{t}{aggregate}{reversed_}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def speaker_section(summary: dict) -> str:
    """Markdown for the systems with multi-speaker attack results; empty when there are none."""
    pooled, spread = [], []
    for name, info in summary["systems"].items():
        for source, entry in (info.get("speakers") or {}).items():
            level = entry.get("speaker_level")
            if level is None:
                speaker_cell = by_mean = by_llr = pick = "n/a (utterance protocol)"
            elif not level["available"]:
                speaker_cell, by_mean, by_llr, pick = level["note"], DASH, DASH, DASH
            else:
                speaker_cell = _auroc(level["headline"])
                pick = _pick(level["headline"])
                by_mean = _auroc(level["by_aggregate"].get("mean"))
                by_llr = _auroc(level["by_aggregate"].get("llr"))
            counts = DASH if level is None else (f"{level['num_member_speakers']} / "
                                                 f"{level['num_nonmember_speakers']}")
            pooled.append([name, source, entry["protocol"], str(entry.get("num_speakers", DASH)), counts,
                           _auroc(entry["utterance_level"]), speaker_cell, pick, by_mean, by_llr])
            per = entry.get("per_speaker")
            if per is not None:
                s = per.get("summary") or {}
                spread.append([name, source, _pick(per), str(s.get("count", 0)), str(per["skipped_speakers"]),
                               _fmt(s.get("min")), _fmt(s.get("median")), _fmt(s.get("max")), _fmt(s.get("sd"))])
    similarity = []
    for name, info in summary["systems"].items():
        sim = info.get("speaker_similarity")
        if sim is None:
            continue
        values = [v["mean_cosine_to_speaker"] for v in sim["per_speaker"].values()]
        similarity.append([name, str(sim["num_speakers"]), _fmt(sim["mean_cosine_to_speaker"]),
                           _fmt(sim["speaker_mean_cosine_to_speaker"]), _fmt(min(values, default=None)),
                           _fmt(max(values, default=None))])
    if not pooled and not similarity:
        return ""
    parts = ["## Speakers\n"]
    if pooled:
        parts += [
            "Multi-speaker data. Utterance level: the pooled held-out headline (under the speaker protocol its "
            "halves and permutations keep each speaker's utterances together). Speaker level (speaker protocol: "
            "whole speakers are members or non-members): each speaker's utterance scores aggregated into one score "
            "(mean, or a Gaussian log-likelihood ratio fitted on labelled calibration speakers only), then attack, "
            "t and aggregate picked on a calibration half of the speakers and AUROC measured on the other half; p "
            "from a permutation test relabelling whole speakers.\n",
            _table(["model", "attack dir", "protocol", "speakers", "member / non-member speakers",
                    "utterance-level AUROC [95% CI] (p)", "speaker-level AUROC [95% CI] (p)",
                    "speaker-level pick (calibration half)", "mean aggregate", "llr aggregate"], pooled) + "\n",
        ]
    if spread:
        parts += [
            "### Spread across speakers (utterance protocol)\n",
            "The headline cell (picked on the calibration half) scored on each speaker's own utterances, for "
            "speakers with enough members and non-members of their own (descriptive).\n",
            _table(["model", "attack dir", "cell", "speakers", "skipped (too few)", "min AUROC", "median",
                    "max", "sd"], spread) + "\n",
        ]
    if similarity:
        parts += [
            "### Speaker similarity of the synthesis\n",
            "Cosine of each synthesis's Resemblyzer embedding with the centroid of its speaker's real recordings "
            "(holdtts evaluate): mean over utterances, mean over speakers, and the lowest and highest speaker.\n",
            _table(["model", "speakers", "mean (utterances)", "mean (speakers)", "lowest speaker", "highest speaker"],
                   similarity) + "\n",
        ]
    return "\n".join(parts)
