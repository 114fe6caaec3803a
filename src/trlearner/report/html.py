"""REPORT.md as a standalone HTML page (for Snakemake's HTML report, whose viewer shows HTML but
not Markdown) and the verdicts as reStructuredText (for its landing page, workflow.rst).

The page uses python-markdown (``markdown``, with its ``tables`` extension) when it is
installed, else the small renderer below (headings, paragraphs, lists, pipe tables, images,
links, bold, italic, code, backslash escapes). Neither passes raw HTML through: a ``<script>``
in REPORT.md is shown as text (the strings of a results folder are escaped already,
:mod:`trlearner.report.escape`; this is the second fence). The report's own PNGs under its
``figures/``, ``analyses/`` and ``gallery/`` folders are inlined as data URIs, so the page shows
its figures wherever it is opened from (Snakemake embeds it in its report as one file); no
other file is read, and a link or image address with a scheme other than http(s) or mailto
(``javascript:``, ``file:``, ``data:``) or an absolute path becomes ``#``.

Example:
    >>> page = markdown_page("# T\\n\\n**Compatible** (1)\\n\\n- a ± b\\n", "T", use_markdown=False)
    >>> "<h1>T</h1>" in page and "<strong>Compatible</strong>" in page and "<li>a ± b</li>" in page
    True
    >>> tiny_markdown("- a\\n  b\\n- c")
    '<ul>\\n<li>a b</li>\\n<li>c</li>\\n</ul>'
"""

from __future__ import annotations

import base64
import html as _html
import re
from pathlib import Path

from . import escape
from .tables import html_document

#: Folders under the report's output folder whose PNGs the page inlines.
INLINED = ("figures", "analyses", "gallery")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAFE_SCHEMES = ("http", "https", "mailto")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation

_INLINE = [(re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img alt="\1" src="\2">'),
           (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
           (re.compile(r"`([^`]+)`"), r"<code>\1</code>")]


def _inline(text: str) -> str:
    escaped: list[str] = []  # backslash-escaped characters, set aside from the patterns

    def keep(m: re.Match) -> str:
        escaped.append(m.group(1))
        return f"\0{len(escaped) - 1}\0"

    text = _html.escape(_html.unescape(_ESCAPED.sub(keep, text)))
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return re.sub("\0(\\d+)\0", lambda m: _html.escape(escaped[int(m.group(1))]), text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


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
                item = [lines[i].split("- ", 1)[1]]
                i += 1
                while i < len(lines) and re.match(r"^\s+\S", lines[i]) and not re.match(r"^\s*- ", lines[i]):
                    item.append(lines[i].strip())  # the item's wrapped continuation lines
                    i += 1
                items.append(f"<li>{_inline(' '.join(item))}</li>")
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
            continue
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
        i += 1
    flush()
    return "\n".join(out)


def _own_png(root: Path, address: str) -> bytes | None:
    """The bytes of the PNG at ``address`` (relative to the output folder ``root``) when it is
    one of the report's own (under an :data:`INLINED` folder of ``root`` once links are
    resolved, a PNG by content), else None."""
    path = (root / address).resolve()
    if path.suffix.lower() != ".png" or not any(path.is_relative_to(root / d) for d in INLINED):
        return None
    data = path.read_bytes() if path.is_file() else b""
    return data if data.startswith(PNG_SIGNATURE) else None


def _addresses(body: str, base: Path | None) -> str:
    """Every ``src``/``href`` in a tag of ``body`` checked (text holds no tag: its ``<`` is
    escaped): an address with another scheme than http(s)/mailto, or an absolute path (the
    report's own are relative; ``//host`` would be another site), becomes ``#``; with ``base``,
    the ``src`` of the report's own PNGs (:func:`_own_png`) become data URIs, and any other
    address is left as it is."""
    root = base.resolve() if base is not None else None

    def sub(m: re.Match) -> str:
        attr, address = m.group(1), _html.unescape(m.group(2))
        read = re.sub(r"[\x00-\x20]", "", address)  # as a browser reads it
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", read)
        if (scheme and scheme.group(1).lower() not in _SAFE_SCHEMES) or read.startswith(("/", "\\")):
            return f' {attr}="#"'
        data = _own_png(root, address) if attr == "src" and root is not None and not scheme else None
        return f' src="data:image/png;base64,{base64.b64encode(data).decode()}"' if data else m.group(0)

    return re.sub(r"<[A-Za-z][^>]*>", lambda tag: re.sub(r'\s(src|href)="([^"]*)"', sub, tag.group(0)), body)


def markdown_page(text: str, title: str, base: str | Path | None = None,
                  use_markdown: bool | None = None) -> str:
    """``text`` (Markdown) as a standalone HTML page.

    Arguments:
        text: the Markdown.
        title: the page title.
        base: the report's output folder, which relative image paths start from; its own PNGs
            are inlined (:data:`INLINED`; None: none is).
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
            md = markdown.Markdown(extensions=["tables"], output_format="html")
            md.preprocessors.deregister("html_block")  # raw HTML is shown as text
            md.inlinePatterns.deregister("html")
            body = md.convert(text)
    if body is None:
        body = tiny_markdown(text)
    body = _addresses(body, Path(base) if base is not None else None)
    page = html_document(body + "\n", title)
    return page.replace("</style>", "table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                                    "padding:2px 6px;font-size:90%}img{max-width:100%}</style>", 1)


def verdicts_rst(claims: list[dict], titles: dict[str, str]) -> str:
    """The claims grouped by verdict, as an RST fragment for Snakemake's landing page (each
    sentence is Markdown, its results strings escaped for it: the text it shows is escaped
    for RST, :func:`trlearner.report.escape.rst`).

    >>> print(verdicts_rst([{"verdict": "v", "claim": "c", "sentence": "a \\| b_c"}], {"v": "V"}))
    ... # doctest: +NORMALIZE_WHITESPACE
    Verdicts (from reports/REPORT.md)
    ----------------------------------
    <BLANKLINE>
    **V** (1)
    <BLANKLINE>
    - a \\| b\\_c
    <BLANKLINE>
    """
    as_rst = lambda sentence: escape.rst(escape.shown(sentence))  # noqa: E731
    lines = ["Verdicts (from reports/REPORT.md)", "----------------------------------", ""]
    for verdict, title in titles.items():
        items = [c for c in claims if c["verdict"] == verdict and c["claim"] != "general"]
        lines += [f"**{escape.rst(title)}** ({len(items)})", ""]
        lines += [f"- {as_rst(c['sentence'])}" for c in items] or ["- none"]
        lines.append("")
    general = [c for c in claims if c["claim"] == "general"]
    if general:
        lines += ["**General claim**", "", f"- {as_rst(general[0]['sentence'])}", ""]
    return "\n".join(lines)
