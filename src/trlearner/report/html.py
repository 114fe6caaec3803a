"""REPORT.md as a standalone HTML page (for Snakemake's HTML report, whose viewer shows HTML but
not Markdown) and the verdicts as reStructuredText (for its landing page, workflow.rst).

The page uses python-markdown (``markdown``, with its ``tables`` extension) when it is
installed, else the small renderer below (headings, paragraphs, lists, pipe tables, images,
links, bold, italic, code). Local images are inlined as data URIs, so the page shows its
figures wherever it is opened from (Snakemake embeds it in its report as one file).

Example:
    >>> page = markdown_page("# T\\n\\n**Compatible** (1)\\n\\n- a ± b\\n", "T", use_markdown=False)
    >>> "<h1>T</h1>" in page and "<strong>Compatible</strong>" in page and "<li>a ± b</li>" in page
    True
"""

from __future__ import annotations

import base64
import html as _html
import re
from pathlib import Path

from .tables import html_document

_INLINE = [(re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img alt="\1" src="\2">'),
           (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
           (re.compile(r"`([^`]+)`"), r"<code>\1</code>")]


def _inline(text: str) -> str:
    text = _html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tiny_markdown(text: str) -> str:
    """The Markdown subset REPORT.md uses, as HTML (no dependency).

    >>> tiny_markdown("| a | b |\\n|:--|:--|\\n| 1 | 2 |")
    '<table>\\n<thead><tr><th>a</th><th>b</th></tr></thead>\\n<tbody>\\n<tr><td>1</td><td>2</td></tr>\\n</tbody></table>'
    """
    out, para, lines, i = [], [], text.splitlines(), 0

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(#{1,6}) (.*)$", line)
        if m:
            flush()
            out.append(f"<h{len(m.group(1))}>{_inline(m.group(2))}</h{len(m.group(1))}>")
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1]):
            flush()
            head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(line))
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>")
            continue
        elif re.match(r"^\s*- ", line):
            flush()
            items = []
            while i < len(lines) and re.match(r"^\s*- ", lines[i]):
                items.append(f"<li>{_inline(lines[i].split('- ', 1)[1])}</li>")
                i += 1
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
            continue
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
        i += 1
    flush()
    return "\n".join(out)


def _inline_images(body: str, base: Path) -> str:
    """Replace ``src="relative.png"`` by a data URI of the file (left as is when missing)."""
    def sub(m: re.Match) -> str:
        path = base / _html.unescape(m.group(1))
        if m.group(1).startswith(("http:", "https:", "data:")) or not path.is_file():
            return m.group(0)
        kind = "image/png" if path.suffix.lower() == ".png" else "application/octet-stream"
        return f'src="data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"'

    return re.sub(r'src="([^"]+)"', sub, body)


def markdown_page(text: str, title: str, base: str | Path | None = None,
                  use_markdown: bool | None = None) -> str:
    """``text`` (Markdown) as a standalone HTML page.

    Arguments:
        text: the Markdown.
        title: the page title.
        base: folder that relative image paths start from; those images are inlined (None: left).
        use_markdown: force python-markdown (True) or the small renderer (False); None: python-markdown
            when installed.

    Returns:
        The HTML document.
    """
    body = None
    if use_markdown is not False:
        try:
            import markdown
        except ImportError:
            if use_markdown:
                raise
        else:
            body = markdown.markdown(text, extensions=["tables"], output_format="html")
    if body is None:
        body = tiny_markdown(text)
    if base is not None:
        body = _inline_images(body, Path(base))
    page = html_document(body + "\n", title)
    return page.replace("</style>", "table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                                    "padding:2px 6px;font-size:90%}img{max-width:100%}</style>", 1)


def rst_escape(text: str) -> str:
    r"""Text for reStructuredText: markup characters escaped.

    >>> rst_escape("*a* `b` |c| d_ \\e")
    '\\*a\\* \\`b\\` \\|c\\| d\\_ \\\\e'
    """
    return re.sub(r"([\\*`|_])", r"\\\1", text)


def verdicts_rst(claims: list[dict], titles: dict[str, str]) -> str:
    """The claims grouped by verdict, as an RST fragment for Snakemake's landing page."""
    lines = ["Verdicts (from reports/REPORT.md)", "----------------------------------", ""]
    for verdict, title in titles.items():
        items = [c for c in claims if c["verdict"] == verdict and c["claim"] != "general"]
        lines += [f"**{rst_escape(title)}** ({len(items)})", ""]
        lines += [f"- {rst_escape(c['sentence'])}" for c in items] or ["- none"]
        lines.append("")
    general = [c for c in claims if c["claim"] == "general"]
    if general:
        lines += ["**General claim**", "", f"- {rst_escape(general[0]['sentence'])}", ""]
    return "\n".join(lines)
