"""``plantguard report``: a generated week of history, alarms and maintenance in a real
store, reported as JSON (the counts) and as a page (its plots, rendered in headless
Chromium without console errors); an empty period says so."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import is_blank, render

from plantguard.alarms import AlarmManager
from plantguard.cli import main
from plantguard.kpi import (
    JournalEntry,
    acknowledgement_delays,
    active_intervals,
    flood_intervals,
    rate_series,
    standing_at,
)
from plantguard.model import AlarmDefinition, Finding, Point, Priority
from plantguard.records.models import DeviceRecord, MaintenancePlan, MaintenanceRecord
from plantguard.reports import page
from plantguard.reports.data import build_report
from plantguard.reports.render import duration_text, render_report
from plantguard.store import Store

UTC = dt.UTC
#: The reported week: 2026-01-01 00:00 UTC to 2026-01-08 00:00 UTC.
SINCE = dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
UNTIL = SINCE + 7 * 86_400.0
UNTIL_ISO = "2026-01-08T00:00:00+00:00"
HOUR = 3600.0
DAY = 86_400.0
FLOOD_AT = SINCE + 1 * DAY + 8 * HOUR  # 12 alarms within 2 min
LIMIT_AT = SINCE + 3 * DAY + 12 * HOUR  # tank1.level over HH for an hour
FORECAST_AT = LIMIT_AT - HOUR  # predicted an hour before
CHATTER_AT = SINCE + 4 * DAY + 10 * HOUR  # 3 activations within 60 s
STUCK_AT = SINCE + 5 * DAY + 20 * HOUR  # never clears: standing, and stale at the end

SITE = """\
id: line1
name: Line 1
areas:
  - id: hall
    devices:
      - id: tank1
        driver: modbus
        connection: {host: 127.0.0.1, port: 5020}
        points:
          - id: level
            name: Tank 1 level
            unit: m
            address: {register: 0, type: float32}
            rules:
              limit: {hh: 9, h: 8, l: 1}
      - id: pump1
        driver: modbus
        connection: {host: 127.0.0.1, port: 5020, unit: 2}
        points:
          - id: flow
            unit: m3/h
            address: {register: 0, type: float32}
"""


def _definitions() -> list[AlarmDefinition]:
    defs = [
        AlarmDefinition(id="tank1.level.limit", source_id="tank1.level", device_id="tank1",
                        rule="limit", priority=Priority.HIGH),
        AlarmDefinition(id="tank1.level.forecast", source_id="tank1.level", device_id="tank1",
                        kind="deviation", rule="forecast", priority=Priority.MEDIUM),
        AlarmDefinition(id="pump1.flow.rate", source_id="pump1.flow", device_id="pump1",
                        kind="rate", rule="rate", priority=Priority.LOW),
        AlarmDefinition(id="pump1.flow.stuck", source_id="pump1.flow", device_id="pump1",
                        kind="system", rule="stuck", priority=Priority.LOW),
    ]  # fmt: skip
    defs += [
        AlarmDefinition(id=f"flood.a{i}", source_id=f"flood.p{i}", device_id="pump1",
                        rule="limit", priority=Priority.LOW)
        for i in range(12)
    ]  # fmt: skip
    return defs


def _finding(alarm: str, active: bool, t: float, value: float = 0.0, cond: str = "H") -> Finding:
    return Finding(alarm, active, cond if active else "", 500 if active else 0, "", value, t)


async def _alarms(store: Store) -> None:
    manager = AlarmManager(store, _definitions())
    # A flood: 12 alarms 10 s apart, each acknowledged 3 min and cleared 5 min later.
    for i in range(12):
        t = FLOOD_AT + 10 * i
        await manager.apply_findings([_finding(f"flood.a{i}", True, t)])
    for i in range(12):
        await manager.acknowledge(f"flood.a{i}", user="li.wei", now=FLOOD_AT + 10 * i + 180)
        await manager.apply_findings([_finding(f"flood.a{i}", False, FLOOD_AT + 10 * i + 300)])
    # A prediction, then the limit it predicted (acknowledged after 5 min).
    await manager.apply_findings(
        [_finding("tank1.level.forecast", True, FORECAST_AT, 7.5, "FORECAST")]
    )
    await manager.apply_findings([_finding("tank1.level.limit", True, LIMIT_AT, 9.4, "HH")])
    await manager.acknowledge("tank1.level.forecast", user="li.wei", now=LIMIT_AT + 200)
    await manager.acknowledge("tank1.level.limit", user="li.wei", now=LIMIT_AT + 300)
    await manager.apply_findings([_finding("tank1.level.forecast", False, LIMIT_AT + 1800)])
    await manager.apply_findings([_finding("tank1.level.limit", False, LIMIT_AT + HOUR)])
    # A chattering alarm: 3 activations within 60 s, never acknowledged.
    for k in range(3):
        t = CHATTER_AT + 20 * k
        await manager.apply_findings([_finding("pump1.flow.rate", True, t, 50.0)])
        await manager.apply_findings([_finding("pump1.flow.rate", False, t + 5)])
    # Standing from day 5 20:00 to the end of the week (28 h: stale).
    await manager.apply_findings([_finding("pump1.flow.stuck", True, STUCK_AT, 12.0, "STUCK")])  # fmt: skip


def _history(store: Store) -> None:
    keys = store.register_points(
        [
            Point(id="tank1.level", device_id="tank1", unit="m"),
            Point(id="pump1.flow", device_id="pump1", unit="m3/h"),
        ]
    )
    t = SINCE - 600 + 600 * np.arange(7 * 144 + 1, dtype=np.float64)  # every 10 min
    level = 5 + 2 * np.sin(2 * np.pi * (t - SINCE) / DAY)
    level[(t >= LIMIT_AT) & (t < LIMIT_AT + HOUR)] = 9.4
    flow = 12 + np.cos(2 * np.pi * (t - SINCE) / DAY)
    quality = np.zeros(t.size, dtype=np.uint8)
    quality[t.size // 2] = 130  # one Bad (communication) sample of the flow
    for key, values, q in (
        (keys["tank1.level"], level, np.zeros(t.size, dtype=np.uint8)),
        (keys["pump1.flow"], flow, quality),
    ):
        store.write_history(np.full(t.size, key, dtype=np.int64), t, values, q)


def _records(store: Store) -> None:
    rec = store.records
    rec.upsert_devices(
        [
            DeviceRecord(id="tank1", category="tank", area="hall"),
            DeviceRecord(id="pump1", category="pump", area="hall"),
        ],
        user="test",
    )
    rec.record_connection(["tank1", "pump1"], SINCE - DAY, "online")
    rec.record_connection(["pump1"], SINCE + 4 * DAY, "offline")
    rec.record_connection(["pump1"], SINCE + 4 * DAY + 2 * HOUR, "online")
    date = dt.date
    rec.upsert_plans(
        [
            MaintenancePlan(id="pump1-grease", device_id="pump1", title="Grease bearings",
                            trigger="calendar", interval=7, start=date(2025, 12, 20)),
            MaintenancePlan(id="tank1-insp", device_id="tank1", kind="inspection",
                            title="Inspect", trigger="calendar", interval=30,
                            start=date(2026, 1, 2)),
            MaintenancePlan(id="pump1-calib", device_id="pump1", kind="calibration",
                            title="Calibrate flow meter", trigger="calendar", interval=30,
                            start=date(2025, 12, 1)),
        ]
    )  # fmt: skip
    at = dt.datetime
    rec.add_records(
        [
            # grease: due 12-20, done 12-27 (before the week); due 01-03, done 01-05: late
            MaintenanceRecord(id="r1", device_id="pump1", plan_id="pump1-grease", performer="t",
                              performed_at=at(2025, 12, 27, 9, tzinfo=UTC)),
            MaintenanceRecord(id="r2", device_id="pump1", plan_id="pump1-grease", performer="t",
                              performed_at=at(2026, 1, 5, 9, tzinfo=UTC)),
            # inspection: due 01-02, done the day before: on time
            MaintenanceRecord(id="r3", device_id="tank1", plan_id="tank1-insp", performer="t",
                              kind="inspection", performed_at=at(2026, 1, 1, 10, tzinfo=UTC)),
        ]
    )  # fmt: skip
    # calibration: due 2025-12-01, never done: overdue at the end


async def _week(db: str) -> None:
    store = Store(db)
    try:
        _history(store)
        _records(store)
        await _alarms(store)
    finally:
        store.close()


def _report_json(db: str, capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    capsys.readouterr()
    assert main(["report", "--period", "week", "--until", UNTIL_ISO, "--db", db, "--json",
                 *extra]) == 0  # fmt: skip
    return json.loads(capsys.readouterr().out)


# --- the numbers ---------------------------------------------------------------------------


async def test_report_json_counts(store_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    await _week(store_target)
    data = _report_json(store_target, capsys, "--points", "tank1.level,pump1.flow")
    assert data["period"] == "week"
    assert (data["since"], data["until"]) == (SINCE, UNTIL)
    assert data["empty"] is False
    _check_alarms(data["alarms"])
    _check_devices_and_maintenance(data)
    _check_trends(data["trends"])


def _check_alarms(alarms: dict[str, Any]) -> None:
    assert alarms["activations"] == 12 + 1 + 1 + 3 + 1
    assert alarms["peak_per_10_min"] == 12
    # > 10 in the preceding 10 min from the 11th activation (+100 s) until the 2nd
    # leaves the window (+610 s): 510 s.
    assert alarms["time_in_flood_s"] == pytest.approx(510)
    assert len(alarms["flood_periods"]) == 1
    flood = alarms["flood_periods"][0]
    assert (flood["start"], flood["end"]) == (
        pytest.approx(FLOOD_AT + 100),
        pytest.approx(FLOOD_AT + 610),
    )
    counts = alarms["per_10_min"]["counts"]
    assert len(counts) == 7 * 144
    assert sum(counts) == alarms["activations"]
    assert max(counts) == 12
    assert alarms["top_bad_actors"][0] == {"alarm": "pump1.flow.rate", "activations": 3,
                                           "percent": pytest.approx(100 * 3 / 18, abs=0.1)}  # fmt: skip
    assert alarms["chattering"] == [{"alarm": "pump1.flow.rate", "max_in_60_s": 3}]
    assert alarms["standing"] == 1
    assert [s["alarm"] for s in alarms["standing_alarms"]] == ["pump1.flow.stuck"]
    assert alarms["standing_alarms"][0]["active_for_s"] == 28 * 3600
    assert [s["alarm"] for s in alarms["stale"]] == ["pump1.flow.stuck"]
    ack = alarms["acknowledgement"]
    # 12 flood alarms (180 s) + the forecast (3,800 s) and the limit (300 s) acknowledged;
    # the 3 chattering activations and the stuck alarm were not.
    assert (ack["annunciated"], ack["acknowledged"], ack["unacknowledged"]) == (18, 14, 4)
    assert ack["median_s"] == pytest.approx(180)
    assert ack["max_s"] == pytest.approx(HOUR + 200)
    assert ack["slowest"][0] == {"alarm": "pump1.flow.rate", "activations": 3,
                                 "acknowledged": 0, "median_s": None}  # fmt: skip


def _check_devices_and_maintenance(data: dict[str, Any]) -> None:
    devices = {d["device_id"]: d for d in data["devices"]["availability"]}
    assert devices["tank1"]["online_rate"] == pytest.approx(1.0)
    assert devices["pump1"]["outages"] == 1
    assert devices["pump1"]["mttr_h"] == pytest.approx(2.0)
    assert devices["pump1"]["availability"] == pytest.approx(1 - 2 / (7 * 24))
    assert data["devices"]["devices_by_category"] == {"pump": 1, "tank": 1}

    maintenance = data["maintenance"]
    by_kind = {c["kind"]: c for c in maintenance["by_kind"]}
    assert (by_kind["maintenance"]["on_time"], by_kind["maintenance"]["late"]) == (0, 1)
    assert (by_kind["inspection"]["on_time"], by_kind["inspection"]["late"]) == (1, 0)
    assert by_kind["calibration"]["overdue_now"] == 1
    assert maintenance["records_in_period"] == 2
    assert [o["plan"] for o in maintenance["overdue"]] == ["pump1-calib"]
    pump = {c["kind"]: c for c in maintenance["by_category"]["pump"]}
    assert pump["maintenance"]["late"] == 1
    assert pump["calibration"]["overdue_now"] == 1


def _check_trends(trends: list[dict[str, Any]]) -> None:
    level, flow = trends
    assert level["point"] == "tank1.level"
    assert level["samples"] == 7 * 144
    assert level["max"] == pytest.approx(9.4)
    assert (level["detections"], level["predictions"]) == (1, 1)
    assert [(e["action"], e["rule"]) for e in level["events"]] == [
        ("activate", "forecast"), ("activate", "limit"), ("clear", "forecast"), ("clear", "limit"),
    ]  # fmt: skip
    assert flow["detections"] == 3 + 1
    assert level["limits"] == {}  # no --site


async def test_report_limits_from_site_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "week.db")
    await _week(db)
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    data = _report_json(db, capsys, "--points", "tank1.level", "--site", str(site))
    assert data["title"] == "Line 1"
    assert data["trends"][0]["limits"] == {"hh": 9.0, "h": 8.0, "l": 1.0}


# --- the page ------------------------------------------------------------------------------


async def test_report_page_has_its_plots_and_renders_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "week.db")
    await _week(db)
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    out = tmp_path / "week.html"
    argv = ["report", "--period", "week", "--until", UNTIL_ISO, "--db", db, "--site", str(site),
            "--points", "tank1.level,pump1.flow", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "report written to" in capsys.readouterr().err
    html = out.read_text(encoding="utf-8")
    # Self-contained: no script, no external resource.
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    # The plots, inline: alarm rate, bad actors, availability, compliance, two trends.
    assert html.count("<svg") == 6
    assert html.count('<figure class="pg-figure">') == 6
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # several SVGs, no id shared
    for text in ("10 per 10 min: flood", "1 per 10 min: very likely acceptable",
                 "HH 9", "detection (1)", "prediction (1)", "on time", "availability"):  # fmt: skip
        assert text in html, text
    for section in ("Alarms (EEMUA 191", "Device statistics", "Maintenance and inspection",
                    "Trends", "Top 10 bad actors", "Chattering alarms", "Standing alarms",
                    "Acknowledgement", "Flood periods", "Prepared by"):  # fmt: skip
        assert section in html, section
    assert "pump1.flow.stuck" in html
    assert "stale" in html
    png = tmp_path / "week.png"
    assert render(out, png) == []
    assert not is_blank(png)


async def test_empty_period_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "week.db")
    await _week(db)
    out = tmp_path / "empty.html"
    # A shift a year before anything was recorded.
    argv = ["report", "--period", "shift", "--until", "2025-01-01T08:00:00+00:00", "--db", db,
            "--points", "tank1.level", "--output", str(out), "--json"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    streams = capsys.readouterr()
    data = json.loads(streams.out)
    assert data["empty"] is True
    assert data["alarms"]["activations"] == 0
    assert data["alarms"]["per_10_min"]["counts"] == [0] * 48
    assert data["trends"][0]["samples"] == 0
    assert "nothing was recorded" in streams.err
    html = out.read_text(encoding="utf-8")
    assert "No data was recorded in this period" in html
    assert "No alarms were annunciated in this period." in html
    assert "No connection history was recorded in this period" in html
    assert "No samples of tank1.level were recorded in this period." in html
    assert "No planned work was done in this period, and none is overdue." in html
    assert "<svg" not in html  # notes, no empty axes
    png = tmp_path / "empty.png"
    assert render(out, png) == []
    assert not is_blank(png)


def test_report_on_a_new_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "new.db")
    Store(db).close()  # created empty (`plantguard db init`); report creates no store
    out = tmp_path / "new.html"
    assert main(["report", "--period", "day", "--db", db, "--output", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "No data was recorded in this period" in html
    assert "No devices are registered in this store." in html
    assert "No maintenance or inspection plans are registered in this store." in html
    assert "No points chosen" in html
    assert "<svg" not in html


def test_report_unknown_point_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.db")
    store = Store(db)
    store.register_points([Point(id="tank1.level", device_id="tank1")])
    store.close()
    assert main(["report", "--db", db, "--points", "tank1.levl", "--json"]) == 2
    err = capsys.readouterr().err
    assert "unknown point 'tank1.levl'" in err
    assert "did you mean tank1.level" in err


async def test_report_data_without_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "week.db")
    await _week(db)
    store = Store(db)
    try:
        data = build_report(store, period="day", until=FLOOD_AT + HOUR, points=["tank1.level"],
                            limits={"tank1.level": {"hh": 9.0}}, title="T")  # fmt: skip
    finally:
        store.close()
    assert data.alarms.kpis.activations == 12
    assert json.dumps(data.as_dict())
    html = render_report(data, tz=UTC)
    assert "T — daily report" in html
    assert "HH 9" in html


# --- the KPI series and the page pieces ---------------------------------------------------------


def test_kpi_series() -> None:
    j = [JournalEntry(100 + 10 * i, f"a{i}", "activate") for i in range(12)]
    j += [JournalEntry(150, "a0", "acknowledge"), JournalEntry(400, "a0", "clear")]
    j += [JournalEntry(5000, "s", "shelve"), JournalEntry(5100, "s", "activate")]
    times = [e.time for e in j if e.action == "activate" and e.alarm_id != "s"]
    assert rate_series(times, 0, 1200) == [12, 0]
    assert flood_intervals(times, 0, 6000) == [(200.0, 710.0)]
    assert active_intervals(j, 0, 6000)["a0"] == [(100.0, 400.0)]
    assert active_intervals(j, 0, 6000)["a1"] == [(110.0, 6000.0)]
    assert standing_at(j, 300).keys() == {f"a{i}" for i in range(12)}
    assert "a0" not in standing_at(j, 500)
    delays = acknowledgement_delays(j, 0, 6000)
    assert len(delays) == 12  # the shelved activation needs no acknowledgement
    assert delays[0] == ("a0", 100.0, 50.0)
    assert all(d is None for _, _, d in delays[1:])


def test_page_pieces_escape_and_nest() -> None:
    fig = page.new_figure(4, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    html = page.page(
        "A <b> & c",
        page.section("S", page.table(["x"], [["<i>"], [1.5], [math.nan]]),
                     page.figure(fig, caption="cap", key="k")),
        page.signature_block(["Tested by"]),
    )  # fmt: skip
    assert "<title>A &lt;b&gt; &amp; c</title>" in html
    assert "<td>&lt;i&gt;</td>" in html
    assert '<td class="num">1.5</td>' in html
    assert html.count("<svg") == 1
    assert "<?xml" not in html
    assert "Tested by" in html
    assert page.table(["x"], [], empty="nothing") == page.note("nothing")
    # Two figures of the same drawing on one page: no element id is shared.
    twins = []
    for _ in range(2):
        twin = page.new_figure(4, 2)
        twin.add_subplot().plot([0, 1], [1, 0])
        twins.append(set(re.findall(r'id="([^"]+)"', page.svg(twin))))
    assert twins[0]
    assert not twins[0] & twins[1]
    assert duration_text(3725) == "1 h 2 min"
    assert duration_text(None) == "–"


def test_progress_bar_only_on_a_terminal() -> None:
    from plantguard.cli.report import _Bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped, terminal = io.StringIO(), Terminal()
    for stream in (piped, terminal):
        bar = _Bar(2, stream)
        bar("alarm KPIs")
        bar("page")
    assert piped.getvalue() == ""
    lines = terminal.getvalue()
    assert "\r\x1b[K[" + "#" * 15 + "." * 15 + "] 1/2 alarm KPIs" in lines
    assert lines.endswith("] 2/2 page\n")


def test_long_trends_are_decimated_keeping_excursions_and_gaps() -> None:
    from plantguard.reports.plots import decimate

    t = np.arange(1_000_000, dtype=np.float64)
    v = np.sin(t / 5000)
    v[123_457] = 50.0  # a one-sample spike
    v[600_000:600_010] = np.nan  # a gap
    dt_, dv = decimate(t, v)
    assert dt_.size <= 4 * 2000
    assert np.all(np.diff(dt_) > 0)
    assert np.nanmax(dv) == 50.0
    assert np.isnan(dv).any()
    assert (dt_[0], dt_[-1]) == (t[0], t[-1])
    short_t, _ = decimate(t[:100], v[:100])
    assert short_t.size == 100
