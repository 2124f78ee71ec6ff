"""Self-contained HTML pages with plots: the pieces every PlantGuard report is made of.

A report (``plantguard report``), an acceptance record (``plantguard acceptance``) or
anything else that must be filed, mailed or printed is **one HTML file**: styles in
the page, every plot an inline ``<svg>`` (matplotlib's SVG, text kept as text), no
script, no external request.  It opens in any browser, prints on A4 with sections
kept together, and stays readable in ten years.

The pieces return HTML *fragments* (``str``) and are put together by the caller::

    from plantguard.reports import page

    fig = page.new_figure(10, 3)
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [3, 1, 2])
    html = page.page(
        "Acceptance record",
        page.section("Devices", page.table(["device", "result"], [["pump1", "pass"]])),
        page.section("Trend", page.figure(fig, caption="Level of tank 1")),
        page.signature_block(["Tested by", "Accepted by"]),
        subtitle="Line 1 · 2026-03-01",
    )
    Path("record.html").write_text(html, encoding="utf-8")

Text given to these functions is escaped (``str`` is text); pass a :class:`Markup`
to insert HTML made elsewhere.  Every fragment these functions return is a
:class:`Markup`, so fragments nest without being escaped twice.

Figures are ``matplotlib.figure.Figure`` objects made with :func:`new_figure` (no
``pyplot``: no global state, safe in threads, no display needed).  matplotlib is
imported only when a figure is made or rendered.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CSS",
    "Markup",
    "badge",
    "escape",
    "figure",
    "key_values",
    "new_figure",
    "note",
    "page",
    "section",
    "signature_block",
    "svg",
    "table",
]


class Markup(str):
    """HTML that is inserted as it is (a fragment made by this module, or trusted HTML)."""

    __slots__ = ()


def escape(content: object) -> Markup:
    """``content`` as HTML: a :class:`Markup` unchanged, anything else as escaped text.

    ``None`` becomes an empty string; floats are given with at most 4 significant
    decimals' worth of noise removed (``0.30000000000000004`` → ``0.3``).
    """
    if isinstance(content, Markup):
        return content
    if content is None:
        return Markup("")
    if isinstance(content, float):
        return Markup(html.escape(_number(content)))
    return Markup(html.escape(str(content)))


def _number(value: float) -> str:
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _join(parts: Iterable[object]) -> Markup:
    return Markup("\n".join(escape(p) for p in parts))


#: The page's style sheet: screen and print (A4, sections and figures kept whole,
#: colours printed as shown).
CSS = """
:root { --ink: #1f2328; --muted: #59636e; --rule: #d1d9e0; --band: #f6f8fa;
        --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 60rem; padding: 1.5rem 2rem 3rem;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans",
             "Noto Sans CJK SC", sans-serif;
       color: var(--ink); background: #fff; }
header.pg-head { border-bottom: 2px solid var(--ink); margin-bottom: 1rem; }
header.pg-head h1 { margin: 0 0 .2rem; font-size: 1.6rem; }
header.pg-head p { margin: 0 0 .6rem; color: var(--muted); }
section.pg-section { margin: 1.4rem 0; }
section.pg-section > h2 { font-size: 1.2rem; border-bottom: 1px solid var(--rule);
                          padding-bottom: .2rem; margin: 0 0 .6rem; }
section.pg-section h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
table.pg-table { border-collapse: collapse; width: 100%; margin: .4rem 0 .8rem;
                 font-variant-numeric: tabular-nums; }
table.pg-table caption { text-align: left; font-weight: 600; padding: .2rem 0; }
table.pg-table th, table.pg-table td { border: 1px solid var(--rule); padding: .25rem .5rem;
                                       text-align: left; vertical-align: top; }
table.pg-table th { background: var(--band); }
table.pg-table td.num { text-align: right; }
dl.pg-kv { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem;
           margin: .4rem 0 .8rem; }
dl.pg-kv dt { color: var(--muted); }
dl.pg-kv dd { margin: 0; font-variant-numeric: tabular-nums; }
figure.pg-figure { margin: .6rem 0 1rem; }
figure.pg-figure svg { display: block; width: 100%; height: auto; }
figure.pg-figure figcaption { color: var(--muted); font-size: .9rem; margin-top: .2rem; }
p.pg-note { border-left: 4px solid var(--rule); background: var(--band);
            padding: .5rem .8rem; margin: .4rem 0 .8rem; }
p.pg-note.warn { border-left-color: var(--warn); }
p.pg-note.bad { border-left-color: var(--bad); }
span.pg-badge { display: inline-block; padding: 0 .45rem; border-radius: .6rem;
                font-size: .85rem; font-weight: 600; color: #fff; background: var(--muted); }
span.pg-badge.ok { background: var(--ok); }
span.pg-badge.warn { background: var(--warn); }
span.pg-badge.bad { background: var(--bad); }
table.pg-sign { width: 100%; border-collapse: collapse; margin-top: 2rem; }
table.pg-sign td { width: 33%; padding: 2.4rem .8rem .2rem 0; vertical-align: bottom; }
table.pg-sign .line { border-bottom: 1px solid var(--ink); height: 1.6rem; }
table.pg-sign .role { color: var(--muted); font-size: .85rem; }
footer.pg-foot { margin-top: 2rem; border-top: 1px solid var(--rule); color: var(--muted);
                 font-size: .8rem; padding-top: .4rem; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  section.pg-section { break-inside: auto; }
  section.pg-section > h2, section.pg-section h3 { break-after: avoid; }
  figure.pg-figure, table.pg-sign, dl.pg-kv, p.pg-note { break-inside: avoid; }
  table.pg-table thead { display: table-header-group; }
  table.pg-table tr { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def page(
    title: str,
    *content: object,
    subtitle: object = "",
    generated: dt.datetime | None = None,
    footer: object = "",
    lang: str = "en",
) -> str:
    """A complete HTML document: ``<head>`` with :data:`CSS`, a header, ``content``, a footer.

    ``content`` are fragments (:func:`section`, :func:`table`, …) in order; plain
    strings are escaped.  ``generated`` (default: now, UTC) is printed in the footer
    after ``footer``.  The document needs nothing outside itself.
    """
    when = (generated or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    stamp = when.strftime("%Y-%m-%d %H:%M UTC")
    foot = f"{escape(footer)} · " if footer else ""
    sub = f"<p>{escape(subtitle)}</p>" if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{html.escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header class="pg-head"><h1>{escape(title)}</h1>{sub}</header>\n'
        f"<main>\n{_join(content)}\n</main>\n"
        f'<footer class="pg-foot">{foot}generated {stamp} by PlantGuard</footer>\n'
        "</body>\n</html>\n"
    )


def section(title: object, *content: object, id: str | None = None, level: int = 2) -> Markup:
    """A titled section (``<h2>``, or ``<h3>`` with ``level=3``) holding ``content``."""
    anchor = f' id="{html.escape(id)}"' if id else ""
    tag = "h2" if level <= 2 else "h3"
    return Markup(
        f'<section class="pg-section"{anchor}>\n<{tag}>{escape(title)}</{tag}>\n'
        f"{_join(content)}\n</section>"
    )


def table(
    headers: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    caption: object = "",
    empty: object = "none",
) -> Markup:
    """A table; numbers (int, float) are right-aligned, ``None`` is an empty cell.

    With no rows it is a :func:`note` saying ``empty`` instead (a header over
    nothing reads as a rendering fault).
    """
    body = []
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, int | float) and not isinstance(cell, bool)
            cells.append(
                f'<td class="num">{escape(cell)}</td>' if numeric else f"<td>{escape(cell)}</td>"
            )
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return (
            note(empty)
            if not caption
            else _join([Markup(f"<h3>{escape(caption)}</h3>"), note(empty)])
        )
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return Markup(
        f'<table class="pg-table">{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table>"
    )


def key_values(items: Iterable[tuple[object, object]]) -> Markup:
    """A definition list of name → value pairs (the headline numbers of a section)."""
    pairs = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return Markup(f'<dl class="pg-kv">{pairs}</dl>')


def note(text: object, level: str = "") -> Markup:
    """A boxed remark, e.g. "No alarms in this period."; ``level`` ``warn`` or ``bad`` colours it."""
    cls = f"pg-note {level}".strip()
    return Markup(f'<p class="{html.escape(cls)}">{escape(text)}</p>')


def badge(text: object, level: str = "") -> Markup:
    """A small coloured label: ``level`` ``ok`` (green), ``warn`` (amber), ``bad`` (red)."""
    cls = f"pg-badge {level}".strip()
    return Markup(f'<span class="{html.escape(cls)}">{escape(text)}</span>')


def signature_block(
    roles: Sequence[object] = ("Prepared by", "Reviewed by", "Approved by"),
    *,
    date_label: object = "Date",
) -> Markup:
    """Lines to sign on, one column per role, with a date line under each."""
    name_cells = "".join(
        f'<td><div class="line"></div><div class="role">{escape(r)}</div></td>' for r in roles
    )
    date_cells = "".join(
        f'<td><div class="line"></div><div class="role">{escape(date_label)}</div></td>'
        for _ in roles
    )
    return Markup(f'<table class="pg-sign"><tr>{name_cells}</tr><tr>{date_cells}</tr></table>')


# --- figures ---------------------------------------------------------------------------

_figure_ids = itertools.count(1)
_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_SIZE = re.compile(r'(<svg\b[^>]*?)\s(width|height)="[^"]*"')
_ID = re.compile(r'\b(id)="([^"]+)"')
_URL_REF = re.compile(r"url\(#([^)]+)\)")
_HREF = re.compile(r'\b(xlink:href|href)="#([^"]+)"')


def new_figure(width: float = 10.0, height: float = 3.2) -> Figure:
    """A matplotlib figure of ``width`` × ``height`` inches, laid out constrained.

    Made without ``pyplot`` (nothing to close, no backend, no global figure list);
    draw on it with ``fig.add_subplot()`` / ``fig.subplots()`` and pass it to
    :func:`figure` or :func:`svg`.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def svg(fig: Figure, *, key: str | None = None) -> Markup:
    """``fig`` as an inline ``<svg>`` element that scales to its container's width.

    Text stays text (``svg.fonttype: none``: small, searchable, crisp in print).
    Every element id (and every reference to one) is prefixed with ``key`` (default:
    ``pgfigN``, a counter), so several figures share a page without sharing an id;
    the same figure and key give the same SVG.
    """
    import matplotlib

    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", key) if key else f"pgfig{next(_figure_ids)}"
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "PlantGuard"})
    text = _PROLOGUE.sub("", buffer.getvalue(), count=1)
    # Drop the fixed size (pt); the viewBox keeps the aspect ratio and CSS sets the width.
    for _ in range(2):
        text = _SIZE.sub(r"\1", text, count=1)
    text = _ID.sub(lambda m: f'{m[1]}="{prefix}-{m[2]}"', text)
    text = _URL_REF.sub(lambda m: f"url(#{prefix}-{m[1]})", text)
    text = _HREF.sub(lambda m: f'{m[1]}="#{prefix}-{m[2]}"', text)
    return Markup(text.strip())


def figure(fig: Figure, *, caption: object = "", key: str | None = None) -> Markup:
    """``<figure>`` with ``fig`` as inline SVG (:func:`svg`) and an optional caption."""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return Markup(f'<figure class="pg-figure">{svg(fig, key=key)}{cap}</figure>')
