"""A results folder is input, not code (issue 27, items 2 and 3): hostile strings in
``metrics.json``, ``provenance.json`` and run folder names are rendered as text in every file
the report writes, and the HTML page inlines none but its own pictures.

The probe: ``<script>``, ``<img src=x onerror=...>``, ``<img src="<planted file>">``, a
Markdown image and a ``javascript:`` link to a planted file, ``|``, LaTeX and reStructuredText
markup in the dataset, algorithm, setting, status, metric, commit, device and a folder name; a
symlink ``figures/evil.png`` to a planted PNG outside the output folder; a ``$\\nocommand{$``
that matplotlib's mathtext cannot parse (it stopped the whole report before). Rendered through both
entry points (``python -m trlearner.pipeline report`` and ``python -m trlearner report``), then
REPORT.html and a table page opened in headless Chromium (skipped when it is not installed).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fixtures import write_run  # noqa: E402
from workflow_helpers import REPO  # noqa: E402

MARKER = "PLANTED-7f3a9c-SECRET"  # the content of the planted files: must appear nowhere
SCRIPT = "<script>document.title='PWNED'</script>"
ONERROR = "<img src=x onerror=\"document.body.setAttribute('data-pwned','yes')\">"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ENTRY_POINTS = {"pipeline": ["-m", "trlearner.pipeline", "report"], "trlearner": ["-m", "trlearner", "report"]}


def _edit(run: Path, name: str = "metrics.json", **fields) -> None:
    path = run / name
    data = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**data, **fields}))


def hostile_results(root: Path) -> dict[str, Path]:
    """The hostile results folder under ``root``; returns the planted files."""
    secret_txt, secret_png = root / "secret.txt", root / "secret.png"
    secret_txt.write_text(MARKER + "\n")
    secret_png.write_bytes(b"\x89PNG\r\n\x1a\n" + MARKER.encode())
    runs = root / "results" / "runs"
    dataset = (f"sin{SCRIPT}|x ![p]({secret_png}) [link](javascript:alert(1)) {ONERROR} "
               f"\\input{{{secret_txt}}} $\\nocommand{{$ `code` *em*\n.. include:: {secret_txt}")
    for seed in (0, 1):
        for variant, values in (("baseline", [0.5, 0.7]), ("trlearner", [0.4, 0.5])):
            run = write_run(runs, "sinusoid", "maml", variant, seed, shots=5, per_task=[v + seed / 10 for v in values])
            _edit(run, dataset=dataset, algorithm=f"maml{ONERROR}|y",
                  **({"setting": "5shot|`z`\n<b>bold</b>"} if variant == "trlearner" else {}))
            _edit(run, "provenance.json", git_commit=ONERROR, device=SCRIPT,
                  package_versions={"torch|x": f'<img src="{secret_txt}">'})
    invalid = write_run(runs, "omniglot", "maml", "baseline", 0, shots=1, ways=5, metric="accuracy",
                        per_task=[0.5, 0.6])
    _edit(invalid, status=SCRIPT, metric=f'<img src="{secret_txt}">')
    # a failed run of a known paper cell, under a folder whose name would start an RST directive
    failed = runs / f"evil\n\n.. raw:: html\n\n   {ONERROR}" / "sinusoid" / "5shot" / "maml" / "baseline" / "seed0"
    failed.mkdir(parents=True)
    (failed / "log.txt").write_text("Traceback\n")
    return {"txt": secret_txt, "png": secret_png}


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def unsafe_html(page: str) -> list:
    """Tags and attributes of ``page`` that run code or load another file: none is allowed."""
    parser = _Tags()
    parser.feed(page)
    bad = []
    for tag, attrs in parser.tags:
        if tag in ("script", "iframe", "object", "embed", "base", "meta") and not (tag == "meta" and
                                                                                   set(attrs) == {"charset"}):
            bad.append(tag)
        for key, value in attrs.items():
            if key.startswith("on") or key == "srcdoc" or (key == "style" and not re.fullmatch(
                    r"text-align: (left|right|center);", value or "")):
                bad.append((tag, key))
            if key in ("src", "href"):
                ok = (value.startswith("data:image/png;base64,") if key == "src" else False) or \
                    re.fullmatch(r"(https?://\S+|#|[\w.-]+(/[\w.-]+)*)", value or "")
                if not ok:
                    bad.append((tag, key, value[:80]))
    return bad


def table_column_counts(markdown: str) -> list[set[int]]:
    """Per Markdown table, the set of cell counts of its rows (one count each when intact)."""
    counts, current = [], set()
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.add(len(re.findall(r"(?<!\\)\|", line)))
        elif current:
            counts.append(current)
            current = set()
    return counts


def render(entry: str, root: Path, out: Path) -> subprocess.CompletedProcess:
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "figures" / "evil.png").symlink_to(root / "secret.png")  # a symlink out of --out
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, *ENTRY_POINTS[entry], "--results", str(root / "results" / "runs"), "--out", str(out),
           "--figures", str(out / "figures"), "--relative-to", str(root)]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    planted = hostile_results(root)
    outs = {}
    for entry in ENTRY_POINTS:
        render(entry, root, root / f"reports-{entry}")
        outs[entry] = root / f"reports-{entry}"
    return root, planted, outs


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_no_markup_from_the_results_runs_in_the_html(reports, entry):
    _, _, outs = reports
    out = outs[entry]
    pages = [out / "REPORT.html", *sorted((out / "tables").glob("*.html"))]
    assert len(pages) >= 3
    for page in pages:
        text = page.read_text()
        assert unsafe_html(text) == [], page.name
        assert "<script" not in text.lower() and "<img src=x" not in text and "<b>bold" not in text, page.name
    html = (out / "REPORT.html").read_text()
    # the hostile strings are there, as text
    assert "sin&lt;script&gt;document.title='PWNED'&lt;/script&gt;|x" in html
    assert "maml&lt;img src=x onerror=" in html
    other = (out / "tables" / "other.html").read_text()  # the hostile dataset's family
    caption = re.search(r"<caption>(.*?)</caption>", other, flags=re.S).group(1)
    assert caption.startswith("sin&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;|x")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_no_byte_of_a_planted_file_is_read(reports, entry):
    _, planted, outs = reports
    out = outs[entry]
    forbidden = [MARKER.encode()] + [base64.b64encode(p.read_bytes()) for p in planted.values()]
    forbidden += [base64.b64encode(MARKER.encode()[i:])[4:-4] for i in range(3)]  # any alignment
    for path in sorted(p for p in out.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        assert not any(f in data for f in forbidden), path
    html = (out / "REPORT.html").read_text()
    inlined = [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    assert inlined and all(MARKER.encode() not in d for d in inlined)
    # only the report's own figure is inlined: the symlink out of --out stays a plain reference
    assert inlined == [(out / "figures" / "main_results.png").read_bytes()]
    assert 'src="figures/evil.png"' in html


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_markdown_tables_keep_their_columns_and_text_opens_no_tag(reports, entry):
    _, _, outs = reports
    out = outs[entry]
    for path in [out / "REPORT.md", *sorted((out / "tables").glob("*.md"))]:
        text = path.read_text()
        assert all(len(c) == 1 for c in table_column_counts(text)), path.name
        assert not re.search(r"<[A-Za-z/!?]", text), path.name  # `<` of the input: &lt;
        assert not re.search(r"(?<!\\)\]\((javascript:|/)", text), path.name  # no link, no image
    md = (out / "REPORT.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| maml&lt;img"))
    assert "maml&lt;img src=x onerror=\"document.body.setAttribute('data-pwned','yes')\">\\|y" in row


def test_latex_and_rst_are_escaped(reports):
    _, planted, outs = reports
    out = outs["pipeline"]
    tex = (out / "tables" / "other.tex").read_text()
    assert "\\input{" not in tex and "\\textbackslash{}input\\{" in tex
    assert "\\$\\textbackslash{}nocommand\\{\\$" in tex  # (a matplotlib label: stopped the report before)
    rst = (out / "verdicts.rst").read_text()
    assert not re.search(r"^\s*\.\.", rst, flags=re.M)  # no directive (raw, include) starts a line
    assert "evil .. raw\\:\\: html" in rst and "javascript:" not in rst
    from docutils.core import publish_parts

    body = publish_parts(rst, writer="html")["body"]
    assert unsafe_html(body) == [] and MARKER not in body


def test_both_entry_points_write_the_same_report(reports):
    _, _, outs = reports
    texts = [(o / "REPORT.md").read_text().replace(o.name, "OUT") for o in outs.values()]
    assert texts[0] == texts[1]


def _dump_dom(page: Path, tmp: Path) -> str:
    """The DOM of ``page`` after its scripts ran, from headless Chromium with no network."""
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--proxy-server=http://127.0.0.1:9", f"--user-data-dir={tmp / 'chromium-profile'}",
         "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "<html" in out.stdout, out.stderr[-2000:]
    return out.stdout


def _payload_ran(dom: str) -> bool:
    return bool(re.search(r"<title>PWNED</title>", dom)) or 'data-pwned="yes"' in dom


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium): "
                                             "the browser check of the rendered pages did not run")
def test_the_payloads_do_nothing_in_a_browser(reports, tmp_path):
    _, _, outs = reports
    control = tmp_path / "control.html"  # the same payloads unescaped: the check can see them run
    control.write_text(f"<!DOCTYPE html><html><head><title>t</title></head><body>{SCRIPT}{ONERROR}</body></html>")
    assert _payload_ran(_dump_dom(control, tmp_path))
    out = outs["pipeline"]
    for page in (out / "REPORT.html", out / "tables" / "other.html"):
        dom = _dump_dom(page, tmp_path)
        assert not _payload_ran(dom), page.name
        assert "document.title='PWNED'" in dom  # shown as text


@pytest.mark.parametrize("use_markdown", [True, False], ids=["python-markdown", "small renderer"])
def test_the_html_page_passes_no_raw_html_and_inlines_only_its_own_pngs(tmp_path, use_markdown):
    """The second fence, for Markdown that was not escaped: both renderers of REPORT.html."""
    from trlearner.report.html import markdown_page

    out, outside = tmp_path / "reports", tmp_path / "outside.png"
    (out / "figures").mkdir(parents=True)
    outside.write_bytes(b"\x89PNG\r\n\x1a\n" + MARKER.encode())
    (out / "figures" / "own.png").write_bytes(b"\x89PNG\r\n\x1a\nown")
    (out / "figures" / "link.png").symlink_to(outside)
    (out / "figures" / "text.png").write_text(MARKER)  # not a PNG by content
    text = (f"{SCRIPT} {ONERROR}\n\n![a](figures/own.png) ![b](figures/link.png) ![c]({outside}) "
            f"![d](../outside.png) ![e](figures/text.png) [f](java&#x09;script:alert(1)) [g](data:text/html,x)\n\n"
            "| a | b |\n|:--|:--|\n| x \\| y | z |\n")
    page = markdown_page(text, "T", base=out, use_markdown=use_markdown)
    assert unsafe_html(page) == [] and MARKER not in page
    assert [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', page)] == \
        [b"\x89PNG\r\n\x1a\nown"]
    assert "&lt;script&gt;document.title=" in page and "<td>x | y</td>" in page.replace(' style="text-align: left;"', "")


@pytest.mark.slow
def test_snakemake_report_embeds_only_the_escaped_pages(tmp_path):
    """Snakemake's HTML report (``snakemake --report``) on the tiny preset, a hostile string
    injected into finished runs before the report rule reruns: the report embeds REPORT.html,
    tables/*.html and PNGs as data URIs, each byte for byte the file the escaped renderer wrote;
    its landing page (workflow.rst with verdicts.rst) runs nothing (about 1 min on 2 cores)."""
    from workflow_helpers import copy_pipeline, snakemake

    d = copy_pipeline(tmp_path / "repo")
    snakemake(d, "--cores", "2", "--configfile", "config/tiny.yaml")
    run = d / "results/tiny/runs/sinusoid/5shot/maml/baseline/seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    _edit(run, protocol={**metrics["protocol"], "preset": SCRIPT}, episodes_hash=ONERROR)  # still valid
    _edit(run, "provenance.json", device=f"{SCRIPT}|{ONERROR}")
    _edit(d / "results/tiny/runs/sinusoid/5shot/anil/trlearner/seed0", status=SCRIPT)  # invalid: Run checks
    snakemake(d, "--cores", "2", "--configfile", "config/tiny.yaml")  # reruns the report (mtime)
    md = (d / "reports/tiny/REPORT.md").read_text()
    assert "Presets: &lt;script>document.title='PWNED'&lt;/script>" in md
    snakemake(d, "--configfile", "config/tiny.yaml", "--report", "reports/tiny/snakemake_report.html")
    page = (d / "reports/tiny/snakemake_report.html").read_text()
    embedded = {name: data for name, data in  # (and Snakemake's own logo.svg)
                re.findall(r'"data:[^";]+;charset=utf8;filename=([^;"]+);base64,([^"]+)"', page)
                if name.endswith((".html", ".png"))}
    assert {"REPORT.html", "regression.html", "main_results.png"} <= set(embedded)
    written = {p.name: p for p in (d / "reports").rglob("*") if p.suffix in (".html", ".png")}
    for name, data in embedded.items():
        content = base64.b64decode(data)
        assert content == written[name].read_bytes(), name  # the file the report rule wrote
        if name.endswith(".html"):
            assert unsafe_html(content.decode()) == [], name
    assert "&lt;script&gt;document.title='PWNED'" in base64.b64decode(embedded["REPORT.html"]).decode()
    if CHROMIUM:
        assert not _payload_ran(_dump_dom(d / "reports/tiny/snakemake_report.html", tmp_path))
