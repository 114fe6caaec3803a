"""Text from a results folder, escaped for each format the report writes.

A results folder is input, not code: a ``metrics.json``, a ``provenance.json``, a run folder's
name or an analysis file may hold any string, e.g. a dataset named ``<script>...</script>`` or
``a | b``. Every such string is escaped where the report renders it, by the function of its
format: :func:`html`, :func:`markdown` (a paragraph or a table cell), :func:`code` (a Markdown
code span), :func:`latex`, :func:`rst`, :func:`mathtext` (a matplotlib label) and
:func:`filename` (a name that becomes a file name). Text the report writes itself is not
escaped, so its own markup keeps working.

Example:
    >>> markdown("a|b <script>alert(1)</script>")
    'a\\\\|b &lt;script>alert(1)&lt;/script>'
    >>> html('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
    >>> latex("50% & $x_1$")
    '50\\\\% \\\\& \\\\$x\\\\_1\\\\$'
"""

from __future__ import annotations

import html as _html
import re

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
# Backslash-escaped: the escape itself, code spans, table columns, emphasis, and a `]` that
# would close a link or image (`](`, `][`). `<` only where it could open a tag, a comment or an
# autolink, `&` only where it would start an entity. So `p<0.001`, `R² > 0.3`, `a & b` and
# `CI [0.1, 0.2]` read as written.
_MARKDOWN = re.compile(r"[\\`|*]|\](?=[(\[])|<(?=[A-Za-z/!?])|&(?=#?\w+;)")
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def one_line(text: object) -> str:
    """``str(text)`` with every line break (and the blanks around it) as one space.

    >>> one_line("a\\r\\n\\n  b")
    'a b'
    """
    return _LINE_BREAKS.sub(" ", str(text))


def html(text: object) -> str:
    """Text for HTML content or a quoted attribute value.

    >>> html("a < b & 'c'")
    'a &lt; b &amp; &#x27;c&#x27;'
    """
    return _html.escape(str(text), quote=True)


def markdown(text: object) -> str:
    """Text for a Markdown paragraph, list item or table cell, shown as written: on one line,
    no column, code span, emphasis, link, image or HTML tag of its own.

    Arguments:
        text: any value (``str()`` of it is escaped).

    Returns:
        The escaped text (python-markdown and GitHub render it as ``text``).

    Example:
        >>> print(markdown("x | `y` ![i](/etc/passwd) <b>\\nz"))
        x \\| \\`y\\` ![i\\](/etc/passwd) &lt;b> z
        >>> markdown("p<0.001, R² > 0.3, Lee & Choi, CI [0.1, 0.2]")
        'p<0.001, R² > 0.3, Lee & Choi, CI [0.1, 0.2]'
    """
    return _MARKDOWN.sub(lambda m: {"<": "&lt;", "&": "&amp;"}.get(m.group(), "\\" + m.group()),
                         one_line(text))


def shown(markdown_text: str) -> str:
    """The plain text that Markdown escaped by :func:`markdown` shows (to hand it to a format
    with its own escaping, e.g. :func:`rst`).

    >>> shown(markdown("a | <b> & \\\\"))
    'a | <b> & \\\\'
    """
    return _html.unescape(re.sub(r"\\(.)", r"\1", markdown_text))


def code(text: object) -> str:
    """A Markdown code span of ``text``, or :func:`markdown` of it when a character could end
    the span, split a table row or read as a tag elsewhere (a backtick, ``|``, ``<``, a line break).

    >>> code("abc1234+dirty"), code("a`b|c")
    ('`abc1234+dirty`', 'a\\\\`b\\\\|c')
    """
    text = str(text)
    return f"`{text}`" if re.fullmatch(r"[^`|<\r\n]+", text) else markdown(text)


def latex(text: object) -> str:
    """Text for LaTeX (a caption, a ``%`` comment): special characters escaped, on one line.

    >>> latex("a_b\\n\\\\input{x}")
    'a\\\\_b \\\\textbackslash{}input\\\\{x\\\\}'
    """
    return "".join(_LATEX.get(ch, ch) for ch in one_line(text))


def rst(text: object) -> str:
    r"""Text for one line of reStructuredText: markup characters and ``:`` (which would make a
    URI such as ``javascript:...`` a link) escaped, line breaks as spaces (a new line could start
    a directive such as ``.. raw::`` or ``.. include::``).

    >>> print(rst("*a* `b` |c| d_ \\e javascript:x\n.. raw:: html"))
    \*a\* \`b\` \|c\| d\_ \\e javascript\:x .. raw\:\: html
    """
    return re.sub(r"([\\*`|_:])", r"\\\1", one_line(text))


def mathtext(text: object) -> str:
    r"""Text for a matplotlib label: ``$`` escaped (mathtext would parse what lies between two,
    and a parse error stops the figure).

    >>> mathtext("a $x$")
    'a \\$x\\$'
    """
    return str(text).replace("$", r"\$")


def filename(name: object) -> str:
    """``name`` as a file name without a folder part: characters other than letters, digits,
    ``_``, ``-`` and ``.`` become ``_``, and no leading dot.

    >>> filename("meta_dataset"), filename("../x y")
    ('meta_dataset', '_x_y')
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name)).lstrip(".") or "_"
