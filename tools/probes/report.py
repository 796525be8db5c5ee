"""Reports of an analysis: JSON for machines, a text summary for people, PNG plots and one HTML page.

- ``to_json(report)``: ``Report.to_dict()`` as text (per flow: counts, ``latency_ns`` with bound
  and the measured/modeled split, ``rate``, ``slots``, ``checks[]``, ``pass``).
- ``text_summary(report)``: one PASS/FAIL/N/C (not checkable) line per check with its numbers.
- ``plot(report, outdir)``: per flow, the latency CDF against the bound, arrivals (and sends) by
  offset within the cycle with the slot windows shaded, and the received rate over time against
  the reserved rate (matplotlib, Agg backend; no display needed).
- ``write_html(report, path, pngs)``: a self-contained page (PNGs embedded as base64).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from typing import Any

import numpy as np

from tools.probes.analyzer import Report


def json_plain(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays (anything else is a TypeError)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_json(report: Report, indent: int | None = 1) -> str:
    return json.dumps(report.to_dict(), indent=indent, default=json_plain)


def fmt_ns(v: Any) -> str:
    """A duration in ns for people: ``1.234 ms``, ``56 ns``; ``-`` for None."""
    if v is None:
        return "-"
    v = float(v)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3f} {unit}"
    return f"{v:.0f} ns"


def status_word(check: dict[str, Any]) -> str:
    """``PASS``, ``FAIL`` or ``N/C`` (not checkable: the noise floor exceeds the bound) of one check."""
    st = check.get("status") or ("pass" if check["pass"] else "fail")
    return {"pass": "PASS", "fail": "FAIL"}.get(st, "N/C")


def text_summary(report: Report) -> str:
    """Human summary: per flow a header line, then one line per check, then the verdict."""
    lines = [f"analyzed {report.frames} frames ({report.probe_packets} probes) from "
             f"{len(report.files)} file(s) in {report.seconds:.2f} s"]
    for f in report.flows:
        lat = f["latency_ns"]
        lines.append("")
        lines.append(f"reservation {f['id']} (tenant {f['tenant']}): sent {f['sent']} ({f['sent_source']}), "
                     f"received {f['received']}, lost {f['lost']}, dup {f['duplicated']}, reordered {f['reordered']}")
        lines.append(f"  measured latency min/p50/p99/max {fmt_ns(lat['min'])} / {fmt_ns(lat['p50'])} / {fmt_ns(lat['p99'])} / "
                     f"{fmt_ns(lat['max'])}; jitter {fmt_ns(lat['jitter_ns'])} (RFC 3550 {fmt_ns(lat['rfc3550_jitter_ns'])})")
        prop = lat["modeled_propagation_ns"]
        if prop is not None:
            how = "emulated" if lat["propagation_emulated"] else "NOT emulated"
            lines.append(f"  modeled propagation along the path {fmt_ns(prop)} ({how})"
                         + (f"; combined (measured max + modeled propagation) {fmt_ns(lat['combined_max_ns'])}"
                            if lat["combined_max_ns"] is not None else ""))
        for c in f["checks"]:
            lines.append(f"  {status_word(c)}  {c['name']:<22} {c['detail']}")
        nc = f.get("not_checkable") or []
        lines.append(f"  => {'PASS' if f['pass'] else 'FAIL'}" + (f" (not checkable: {', '.join(nc)})" if nc else ""))
    for u in report.unknown_flows:
        lines.append(f"(unknown flow {u['flow_id']} id {u['reservation_id']!r}: {u['packets']} probes, not checked)")
    if not report.flows:
        lines.append("no reservation's probes found in the captures => FAIL")
    lines.append("")
    lines.append(f"overall: {'PASS' if report.passed else 'FAIL'}")
    return "\n".join(lines)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _save(fig, path: str) -> str:
    """Lay out, write as PNG and close one figure; returns its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot(report: Report, outdir: str) -> list[str]:
    """Write the PNGs of every flow into ``outdir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    paths = []
    for f in report.flows:
        s = report.series.get(f["id"])
        if s is None:
            continue
        name = _safe(f["id"])
        lat = np.sort(s["latency_ns"]) / 1e3
        bound = f["latency_ns"]["bound_ns"] / 1e3
        fig, ax = plt.subplots(figsize=(6, 3.6))
        if len(lat):
            ax.step(lat, np.arange(1, len(lat) + 1) / len(lat), where="post", label="measured")
        ax.axvline(bound, color="red", ls="--", label=f"bound {bound:g} us")
        prop = f["latency_ns"]["modeled_propagation_ns"]
        if prop and not f["latency_ns"]["propagation_emulated"] and len(lat):
            ax.step(lat + prop / 1e3, np.arange(1, len(lat) + 1) / len(lat), where="post", ls=":",
                    label="measured + modeled propagation")
        ax.set_xlabel("one-way latency (us)")
        ax.set_ylabel("CDF")
        ax.set_title(f"{f['id']}: latency")
        ax.legend(fontsize=8)
        paths.append(_save(fig, os.path.join(outdir, f"{name}-latency-cdf.png")))

        sl = f["slots"]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        cyc = sl["cycle_ns"] / 1e3
        bins = min(200, max(10, int(sl["cycle_ns"] // max(1, sl["slot_ns"]))))
        for a, w in sl["instances"]:
            ax.axvspan(a / 1e3, (a + w) / 1e3, color="green", alpha=0.2)
        ax.hist(s["tx_offset_ns"] / 1e3, bins=bins, range=(0, cyc), alpha=0.6, label="sent")
        ax.hist(s["arrival_offset_ns"] / 1e3, bins=bins, range=(0, cyc), alpha=0.6, label="arrived")
        ax.set_xlabel("offset within the cycle (us); shaded: reserved tx slot windows")
        ax.set_ylabel("datagrams")
        ax.set_title(f"{f['id']}: sends and arrivals by slot")
        ax.legend(fontsize=8)
        paths.append(_save(fig, os.path.join(outdir, f"{name}-slots.png")))

        fig, ax = plt.subplots(figsize=(6, 3.6))
        if len(s["rate_bps"]):
            ax.step(s["rate_t_ns"] / 1e9, s["rate_bps"] / 1e6, where="post", label="received")
        ax.axhline(f["rate"]["reserved_bps"] / 1e6, color="red", ls="--", label="reserved")
        ax.set_xlabel(f"time (s), {f['rate']['window_ns'] / 1e6:g} ms windows (last may be partial)")
        ax.set_ylabel("Mb/s (IP bytes)")
        ax.set_title(f"{f['id']}: rate")
        ax.legend(fontsize=8)
        paths.append(_save(fig, os.path.join(outdir, f"{name}-rate.png")))
    return paths


def write_html(report: Report, path: str, pngs: list[str] | None = None) -> str:
    """A self-contained HTML report (summary, checks table, embedded PNGs)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>detnet verification</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}td,th{padding:2px 8px}"
             ".PASS{color:#070}.FAIL{color:#b00;font-weight:bold}.N\\/C{color:#a60}pre{background:#f4f4f4;padding:8px}</style>",
             "</head><body>",
             f"<h1>Verification: <span class='{'PASS' if report.passed else 'FAIL'}'>"
             f"{'PASS' if report.passed else 'FAIL'}</span></h1>",
             f"<pre>{html.escape(text_summary(report))}</pre>"]
    for f in report.flows:
        parts.append(f"<h2>{html.escape(f['id'])} <span class='{'PASS' if f['pass'] else 'FAIL'}'>"
                     f"{'PASS' if f['pass'] else 'FAIL'}</span></h2><table><tr><th>check</th><th>result</th>"
                     "<th>value</th><th>limit</th><th>detail</th></tr>")
        for c in f["checks"]:
            r = status_word(c)
            parts.append(f"<tr><td>{html.escape(c['name'])}</td><td class='{r}'>{r}</td>"
                         f"<td>{html.escape(str(c['value']))}</td><td>{html.escape(str(c['limit']))}</td>"
                         f"<td>{html.escape(c['detail'])}</td></tr>")
        parts.append("</table>")
        for p in pngs or []:
            if os.path.basename(p).startswith(_safe(f["id"]) + "-"):
                with open(p, "rb") as fh:
                    data = base64.b64encode(fh.read()).decode()
                parts.append(f"<img alt='{html.escape(os.path.basename(p))}' src='data:image/png;base64,{data}'>")
    parts.append("<h2>JSON</h2><pre>" + html.escape(to_json(report)) + "</pre></body></html>")
    with open(path, "w") as fh:
        fh.write("\n".join(parts))
    return path


def write_all(report: Report, outdir: str) -> dict[str, Any]:
    """report.json, summary.txt, the PNGs and report.html in ``outdir``."""
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "report.json"), "w") as fh:
        fh.write(to_json(report))
    with open(os.path.join(outdir, "summary.txt"), "w") as fh:
        fh.write(text_summary(report) + "\n")
    pngs = plot(report, outdir)
    h = write_html(report, os.path.join(outdir, "report.html"), pngs)
    return {"json": os.path.join(outdir, "report.json"), "summary": os.path.join(outdir, "summary.txt"),
            "pngs": pngs, "html": h}
