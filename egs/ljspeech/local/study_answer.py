#!/usr/bin/env python3
"""Copy the CPU study's answer from its report into docs/study.md, so the page's tables and figure are the
report's own (computed from the committed rows), never typed by hand.

    local/study_answer.py                 # write the block into docs/study.md
    local/study_answer.py --check         # exit 1 when the page's block is not the report's (a test runs it)

The block sits between two marker lines that whoever writes the page's prose places once:
    <!-- study_answer.py begin -->
    <!-- study_answer.py end -->
It holds the report's sections that answer the study's question (the answer per pair, leakage against the
baseline with the pre-registered cells and quality beside it, whether each model leaks at all) and its
AUROC-by-epoch figure and table, headings one level down, links rewritten to resolve from the page.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from holdtts.utils.fileio import write_text_atomic

DOCS = Path(__file__).resolve().parents[3] / "docs"
SECTIONS = ("The answer", "Does each system leak less than its baseline?", "Does each model leak at all?")
FIGURES = ("AUROC during training",)  # subsections of the report's "Figures"
BEGIN, END = "<!-- study_answer.py begin -->", "<!-- study_answer.py end -->"
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")


class AnswerError(Exception):
    pass


def split_sections(text: str, level: int) -> dict[str, str]:
    """Heading title -> the section's text (its heading line included) for headings of exactly `level`."""
    mark = "#" * level + " "
    sections, title, lines, fenced = {}, None, [], False
    for line in text.splitlines(keepends=True):
        fenced ^= line.startswith("```")
        if line.startswith(mark) and not fenced:
            if title is not None:
                sections[title] = "".join(lines)
            title, lines = line[len(mark):].strip(), [line]
        elif title is not None:
            lines.append(line)
    if title is not None:
        sections[title] = "".join(lines)
    return sections


def relink(line: str, report: Path, page: Path) -> str:
    """Markdown link and image targets of a line of the report, made to resolve from the page: a relative
    file against the report's folder, an anchor of the report's own against the report file. Inline code
    (between backticks) is left as it is."""
    def target(match: re.Match) -> str:
        label, href = match.groups()
        if re.match(r"^[a-z]+:", href) or href.startswith("/"):
            return match.group(0)
        path, _, anchor = href.partition("#")
        base = report if not path else report.parent / path
        new = Path(os.path.relpath(base, page.parent)).as_posix()
        return f"{label}({new}{'#' + anchor if anchor else ''})"
    pieces = line.split("`")
    return "`".join(LINK.sub(target, piece) if i % 2 == 0 else piece for i, piece in enumerate(pieces))


def for_the_page(section: str, report: Path, page: Path) -> str:
    """A report section as the page shows it: headings one level down, links relinked; fenced code as it is."""
    out, fenced = [], False
    for line in section.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            line = relink("#" + line if re.match(r"#+ ", line) else line, report, page)
        out.append(line)
    return "\n".join(out)


def answer_block(report: Path, page: Path) -> str:
    if not report.is_file():
        raise AnswerError(f"{report}: no report (run local/cpu_study.sh --stage 8 first)")
    text = report.read_text(encoding="utf-8")
    top = split_sections(text, 2)
    figures = split_sections(top.get("Figures", ""), 3)
    parts = []
    for title, found in [*((t, top.get(t)) for t in SECTIONS), *((t, figures.get(t)) for t in FIGURES)]:
        if found is None:
            raise AnswerError(f"{report}: no section '{title}' (a report of an older holdtts, or of too few models)")
        parts.append(for_the_page(found.rstrip("\n"), report, page))
    source = Path(os.path.relpath(report, page.parent)).as_posix()
    return (f"{BEGIN}\n*From [the study's report]({source}), copied by `egs/ljspeech/local/study_answer.py`; "
            "every number recomputes from the committed rows.*\n\n" + "\n\n".join(parts) + f"\n{END}")


def current_block(page_text: str, page: Path) -> tuple[int, int]:
    """The character span of the block, markers included."""
    begin, end = page_text.find(BEGIN), page_text.find(END)
    if begin < 0 or end < begin or page_text.count(BEGIN) != 1 or page_text.count(END) != 1:
        raise AnswerError(f"{page}: needs exactly one '{BEGIN}' line followed by one '{END}' line")
    return begin, end + len(END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, default=DOCS / "study" / "main" / "report.md")
    parser.add_argument("--page", type=Path, default=DOCS / "study.md")
    parser.add_argument("--check", action="store_true", help="only say whether the page's block is the report's")
    args = parser.parse_args(argv)
    try:
        page_text = args.page.read_text(encoding="utf-8")
        begin, end = current_block(page_text, args.page)
        block = answer_block(args.report, args.page)
    except (AnswerError, OSError) as err:
        print(f"study_answer.py: {err}", file=sys.stderr)
        return 2
    if args.check:
        if page_text[begin:end] != block:
            print(f"study_answer.py: {args.page}'s answer differs from {args.report}'s: run "
                  "local/study_answer.py", file=sys.stderr)
            return 1
        print(f"{args.page}: the answer block is the report's")
        return 0
    try:
        write_text_atomic(args.page, page_text[:begin] + block + page_text[end:])
    except OSError as err:
        print(f"study_answer.py: {args.page}: {err}", file=sys.stderr)
        return 2
    print(f"wrote the answer of {args.report} into {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
