"""The acceptance record as one self-contained HTML page (:mod:`plantguard.reports.page`).

Rendered from the :class:`~.record.Record` alone, so the JSON record can be rendered
again at any time.  The page: what was tested (site file and its SHA-256, version,
dates, store, gateway), the result and a summary plot, one table per section of the
standard's scope, a plot of every loop check (the recorded value, the limits and
each write), the items awaiting an engineer's signature, and the signature block.
Print CSS comes with the page: a browser's Print to PDF gives the filed document.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ..reports import page
from .record import SECTIONS, Item, Record, Status

__all__ = ["render_html"]

_LEVEL = {
    Status.PASS: "ok",
    Status.FAIL: "bad",
    Status.SIGN_OFF: "warn",
    Status.NOT_APPLICABLE: "",
}
_COLOURS = {
    Status.PASS: "#1a7f37",
    Status.FAIL: "#cf222e",
    Status.SIGN_OFF: "#9a6700",
    Status.NOT_APPLICABLE: "#8c959f",
}
_LIMIT_COLOURS = {"hh": "#cf222e", "h": "#bc4c00", "l": "#bc4c00", "ll": "#cf222e"}


def _badge(status: Status) -> page.Markup:
    return page.badge(status.label, _LEVEL[status])


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(record: Record) -> str:
    """The whole page for ``record``."""
    result = "ACCEPTED" if record.accepted else "NOT ACCEPTED"
    name = record.site_name or record.site_id or record.site_file
    content: list[object] = [
        _header(record, result),
        _summary(record),
        *(_section(key, title, record.section(key)) for key, title in SECTIONS.items()),
        _loop_plots(record),
        _sign_offs(record),
        page.section(
            "Signatures",
            page.note(
                "Signing confirms the items above as recorded, the sign-off items as "
                "checked at the instrument, and the failed items as listed for correction."
            ),
            page.signature_block(
                ["Tested by (commissioning engineer)", "For the plant (owner)", "Accepted by"]
            ),
            id="signatures",
        ),
    ]
    return page.page(
        f"Acceptance record — {name}",
        *content,
        subtitle=f"site {record.site_id} · {_when(record.started)} · {result}",
        generated=record.finished or record.started,
        footer=f"PlantGuard {record.version} · site file SHA-256 {record.site_sha256[:16]}…",
    )


def _header(record: Record, result: str) -> page.Markup:
    gateway = record.gateway or {}
    session = gateway.get("session") or {}
    mode = {
        "running": f"running on the store ({gateway.get('holder', '')})",
        "started": "started from the site file by this run",
    }.get(str(gateway.get("mode", "")), "-")
    rows: list[tuple[object, object]] = [
        ("Result", page.badge(result, "ok" if record.accepted else "bad")),
        ("Site", f"{record.site_name} ({record.site_id})" if record.site_name else record.site_id),
        ("Site file", record.site_file),
        ("Site file SHA-256", record.site_sha256 or "-"),
        ("PlantGuard version", record.version),
        ("Started", _when(record.started)),
        ("Finished", _when(record.finished)),
        ("Store", record.store or "-"),
        ("Gateway", mode),
        ("OPC UA endpoint", gateway.get("endpoint") or "-"),
        (
            "OPC UA session",
            f"{session.get('security')}, {session.get('user')}"
            if session
            else gateway.get("session_error") or "-",
        ),
        ("Tested by", record.tested_by or "- (no --as: no loop check could write)"),
    ]
    return page.section("Record", page.key_values(rows), id="record")


def _summary(record: Record) -> page.Markup:
    statuses = list(Status)
    rows: list[list[object]] = []
    for key, title in SECTIONS.items():
        items = record.section(key)
        rows.append([title, *(sum(i.status is s for i in items) for s in statuses), len(items)])
    counts = record.counts()
    rows.append(["All", *(counts[s.value] for s in statuses), len(record.items)])
    failed = record.failed
    verdict = (
        page.note(
            f"{len(failed)} items failed — "
            + "; ".join(f"{i.title}: {i.summary}" for i in failed[:8]),
            "bad",
        )
        if failed
        else page.note("No item failed.", "")
    )
    return page.section(
        "Summary",
        verdict,
        page.table(["section", *(s.label for s in statuses), "items"], rows),
        page.figure(_summary_figure(record), caption="Items by section and result", key="summary"),
        id="summary",
    )


def _summary_figure(record: Record) -> Any:
    fig = page.new_figure(8.0, 2.4)
    ax = fig.add_subplot()
    names = list(SECTIONS.values())[::-1]
    keys = list(SECTIONS)[::-1]
    left = [0] * len(keys)
    for status in Status:
        widths = [sum(i.status is status for i in record.section(k)) for k in keys]
        ax.barh(names, widths, left=left, color=_COLOURS[status], label=status.label)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("items")
    ax.legend(loc="lower right", fontsize=8, ncols=4, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _section(key: str, title: str, items: Sequence[Item]) -> page.Markup:
    rows = [[i.title, _badge(i.status), i.summary] for i in items]
    return page.section(
        title,
        page.table(["item", "result", "evidence"], rows, empty="no items"),
        id=key,
    )


def _loop_plots(record: Record) -> page.Markup:
    figures = [
        page.figure(_loop_figure(i), caption=f"{i.title}: {i.status.label}", key=i.id)
        for i in record.section("alarms")
        if (i.evidence.get("series") or {}).get("t")
    ]
    if not figures:
        return page.Markup("")
    return page.section(
        "Loop checks",
        page.note(
            "The value recorded by the gateway's history during each loop check, the "
            "alarm's limits, and each write (dotted) with the limit it drove the value past."
        ),
        *figures,
        id="loop-checks",
    )


def _loop_figure(item: Item) -> Any:
    ev = item.evidence
    series = ev["series"]
    start = float(series["start"])
    fig = page.new_figure(8.0, 2.6)
    ax = fig.add_subplot()
    t = [x for x, v in zip(series["t"], series["v"], strict=True) if v is not None]
    v = [y for y in series["v"] if y is not None]
    ax.step(t, v, where="post", color="#0969da", linewidth=1.6, label=ev.get("point", "value"))
    for name, limit in (ev.get("limits") or {}).items():
        ax.axhline(limit, color=_LIMIT_COLOURS.get(name, "#59636e"), linestyle="--", linewidth=1)
        ax.annotate(
            name.upper(),
            (1.0, limit),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    for n, step in enumerate(ev.get("steps") or []):
        x = float(step["written"]) - start
        ax.axvline(x, color="#59636e", linestyle=":", linewidth=1)
        label = step.get("condition") or step.get("step", "")
        ax.annotate(
            str(label),
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -9 - 10 * (n % 2)),  # staggered: writes follow each other closely
            textcoords="offset points",
            fontsize=8,
        )
    unit = ev.get("unit") or ""
    ax.set_xlabel("seconds")
    ax.set_ylabel(unit)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _sign_offs(record: Record) -> page.Markup:
    items = [i for i in record.items if i.status is Status.SIGN_OFF]
    if not items:
        return page.Markup("")
    return page.section(
        "For sign-off",
        page.note("Checked by an engineer at the instrument; sign each line.", "warn"),
        page.table(
            ["item", "recorded", "checked by", "date"],
            [[i.title, i.summary, "", ""] for i in items],
        ),
        id="sign-off",
    )
