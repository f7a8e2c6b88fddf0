"""docs/study.md's answer is the study report's, copied by local/study_answer.py: headings one level down,
links that resolve from the page, the prose around the block untouched, and a check that fails when they
differ."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "egs" / "ljspeech" / "local" / "study_answer.py"
spec = importlib.util.spec_from_file_location("study_answer", SCRIPT)
study_answer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_answer)

REPORT = """# holdtts report: membership privacy beside audio quality

Systems from `exp`.

## The answer

| system | baseline | leakage |
|---|---|---|
| hold2 | vp | -0.100 [-0.2, -0.01], p = 0.01 |

## Does each system leak less than its baseline?

Held-out AUROC, see [how to read this](#how-to-read-this).

### At the pre-registered cells

cells of `../../docs/study/preregistered.json`, not a link: `[code](y.md)`

```
## not a heading
[fenced](z.md)
```

## Does each model leak at all?

| model | leakage |
|---|---|
| vp | detected |

## Findings

- not copied

## Figures

### ROC curves

![ROC curves](roc.png)

### AUROC during training

![AUROC during training](auroc_during_training.png)

By epoch, mean over seeds ([the rows](models/vp/train_log.jsonl), [the paper](https://example.org/x#y)).

## How to read this

words
"""
PAGE = """# The study

Prose before.

{begin}
{end}

Prose after.
"""


def _files(tmp_path, report=REPORT, page=PAGE):
    (tmp_path / "docs" / "study" / "main").mkdir(parents=True)
    report_path, page_path = tmp_path / "docs" / "study" / "main" / "report.md", tmp_path / "docs" / "study.md"
    report_path.write_text(report)
    page_path.write_text(page.format(begin=study_answer.BEGIN, end=study_answer.END))
    return ["--report", str(report_path), "--page", str(page_path)], page_path


def test_the_answer_is_copied_between_the_markers_and_checked(tmp_path, capsys):
    argv, page = _files(tmp_path)
    assert study_answer.main([*argv, "--check"]) == 1  # the empty block is not the report's
    assert study_answer.main(argv) == 0
    text = page.read_text()
    assert text.startswith("# The study\n\nProse before.\n\n") and text.endswith("\n\nProse after.\n")
    block = text[text.index(study_answer.BEGIN):text.index(study_answer.END)]
    for heading in ("### The answer\n", "### Does each system leak less than its baseline?\n",
                    "#### At the pre-registered cells\n", "### Does each model leak at all?\n",
                    "#### AUROC during training\n"):
        assert heading in block
    assert "Findings" not in block and "ROC curves" not in block and "How to read this\n" not in block
    assert "| hold2 | vp | -0.100 [-0.2, -0.01], p = 0.01 |" in block
    assert "![AUROC during training](study/main/auroc_during_training.png)" in block
    assert "[the rows](study/main/models/vp/train_log.jsonl)" in block
    assert "[how to read this](study/main/report.md#how-to-read-this)" in block  # the report's own anchor
    assert "[the paper](https://example.org/x#y)" in block
    assert "cells of `../../docs/study/preregistered.json`" in block and "not a link: `[code](y.md)`" in block
    assert "```\n## not a heading\n[fenced](z.md)\n```" in block  # fenced code as it is
    assert study_answer.main([*argv, "--check"]) == 0
    assert study_answer.main(argv) == 0 and page.read_text() == text  # writing again changes nothing
    Path(argv[1]).write_text(REPORT.replace("-0.100", "-0.090"))
    assert study_answer.main([*argv, "--check"]) == 1
    assert "differs from" in capsys.readouterr().err


@pytest.mark.parametrize("report, page, message", [
    (REPORT.replace("## Does each model leak at all?", "## Something else"), PAGE,
     "no section 'Does each model leak at all?'"),
    (REPORT.replace("### AUROC during training", "### Other"), PAGE, "no section 'AUROC during training'"),
    (REPORT, "# The study\n\nno markers\n", "needs exactly one"),
    (REPORT, PAGE + "{begin}\n", "needs exactly one"),
])
def test_a_report_or_page_it_cannot_use_is_a_clear_error(tmp_path, capsys, report, page, message):
    argv, page_path = _files(tmp_path, report, page)
    before = page_path.read_text()
    assert study_answer.main(argv) == 2
    assert message in capsys.readouterr().err and page_path.read_text() == before


def test_the_committed_study_page_holds_the_committed_reports_answer():
    page = (REPO / "docs" / "study.md").read_text()
    if study_answer.BEGIN not in page:
        pytest.skip("docs/study.md has no answer block yet (the main study is not finished)")
    assert study_answer.main(["--check"]) == 0


def test_the_copied_titles_are_the_ones_the_report_writes():
    """The script finds sections by title: a renamed section in holdtts.report would leave it finding none."""
    import inspect

    from holdtts.report import markdown

    source = inspect.getsource(markdown)
    for title in study_answer.SECTIONS:
        assert f'"## {title}\\n"' in source, title
    titles = {title for title, _ in markdown.FIGURE_CAPTIONS.values()}
    assert set(study_answer.FIGURES) <= titles
