"""Every link and every referenced document in README.md, docs/*.md and benchmarks/README.md
resolves inside the repository (issue 17 part 7).

Checked: each relative Markdown link ``[text](path#anchor)`` (the file exists under the
repository root; the anchor is one of the target's headings, GitHub style), each mention of a
Markdown file (``docs/X.md``, ``DESIGN.md``: relative to the document's folder or the
repository root) and every ``../shared/...`` mention (outside the repository: never allowed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", REPO / "benchmarks" / "README.md", *(REPO / "docs").glob("*.md")])

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MD_MENTION = re.compile(r"(?<![\w/.:-])((?:\.{1,2}/)*(?:[\w.-]+/)*[\w-]+\.md)(?![\w/])")
SHARED = re.compile(r"(?<![\w/.-])(?:\.\./)+shared/[^\s`'\",;)]*")
URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
# Markdown files the docs name that are not documents of this repository: outputs (under
# these folders, or by these names) and files inside third-party archives.
OUTPUT_DIRS = ("reports/", "results/", "data/", "$OUT/")
NOT_DOCS = {
    "REPORT.md": "written by `trlearner report` into reports/",
    "gpu_check.md": "written by the GPU check into $OUT or benchmarks/results/",
    "bench.md": "written by `trlearner bench`",
    "important_readme.md": "a file inside the pQSAR archive drug.zip",
}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__|\[|\]\([^)]*\)", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path, text: str | None = None) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text() if text is None else text).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def inside(path: Path) -> bool:
    try:
        path.resolve().relative_to(REPO)
        return True
    except ValueError:
        return False


def problems(doc: Path, text: str | None = None) -> list[str]:
    """What does not resolve in ``doc`` (its ``text``, read from ``doc`` by default)."""
    text = doc.read_text() if text is None else text
    name = doc.relative_to(REPO)
    out = []
    prose = FENCE.sub("", text)  # links inside code blocks are not links
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file) if file else doc
        if not inside(dest) or not dest.exists():
            out.append(f"{name}: link ({target}) does not resolve inside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest, text if dest == doc else None):
            out.append(f"{name}: link ({target}): {dest.relative_to(REPO)} has no heading #{anchor}")
    plain = LINK.sub(" ", URL.sub(" ", text))  # link targets were checked above
    for m in SHARED.finditer(plain):
        out.append(f"{name}: mentions {m.group(0)!r}, outside the repository (ship what it cites in docs/)")
    for mention in MD_MENTION.findall(plain):
        if "shared/" in mention or mention.startswith(OUTPUT_DIRS) or Path(mention).name in NOT_DOCS:
            continue  # reported above, or an output / a third-party file
        if not any(inside(base / mention) and (base / mention).exists() for base in (doc.parent, REPO)):
            out.append(f"{name}: mentions {mention}, which is not in the repository")
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_and_referenced_doc_resolves(doc):
    assert problems(doc) == []


def test_the_checker_sees_broken_links():
    """The checker itself, on a text with one fault of each kind (a missing file, a missing
    anchor, a path outside the repository, a bare mention of a missing doc) and three good
    links (a heading of this text, another doc's heading, a link inside a code block)."""
    text = ("# Title\n\nSee [x](NOPE.md), [y](PIPELINE.md#no-such-heading), [z](#title), "
            "[w](DATA.md#tests), `../shared/paper/X.md`, and MISSING.md.\n"
            "```\n[code](PIPELINE.md#not-checked-in-code)\n```\n")
    found = problems(REPO / "docs" / "PIPELINE.md", text)
    assert len(found) == 4, found
    assert any("(NOPE.md) does not resolve" in p for p in found)
    assert any("no heading #no-such-heading" in p for p in found)
    assert any("'../shared/paper/X.md', outside the repository" in p for p in found)
    assert any("mentions MISSING.md" in p for p in found)


def test_slugs_follow_github():
    assert slug("Run integrity (issue 14)") == "run-integrity-issue-14"
    assert slug("`trlearner data` and DVC") == "trlearner-data-and-dvc"
    assert slug("5. Numbers known from the paper") == "5-numbers-known-from-the-paper"
