"""The run's report: a text table of the SLOs, and a self-contained report.html with the plots inline.

Plots are matplotlib PNGs (Agg backend, no display) embedded as base64
data URIs, so the one HTML file is the whole report: nodes Ready over
time, Lease writes/s, API latency percentiles over time, pods by phase
over time, CPU and RSS per component; then the SLO table with pass/fail
and each measurement's JSON.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["summary_table", "write_html", "PLOTS"]

#: Plot titles, in report order (tests look for each).
PLOTS = ("Nodes Ready over time", "Lease writes/s", "API latency percentiles over time", "Pods by phase over time",
         "CPU per component", "RSS per component")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def summary_table(results: Dict[str, Any]) -> str:
    rows = [["measurement", "SLI", "value", "SLO", "result"]]
    for s in results["slos"]:
        rows.append([s["measurement"], s["name"], _fmt(s["value"]), f"{s['op']} {_fmt(s['threshold'])}",
                     "pass" if s["pass"] else "FAIL"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdict = "all SLOs met" if results["passed"] else ("run failed: " + results["error"] if results["error"]
                                                        else "SLO FAILED")
    return "\n".join([f"megaplane bench {results['scenario']}: {verdict}", *lines,
                      *(f"note: {n}" for n in results["notes"])])


def _padded(col: Sequence[Optional[float]], n: int) -> List[float]:
    out = [float("nan") if v is None else float(v) for v in col[:n]]
    return out + [float("nan")] * (n - len(out))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(results: Dict[str, Any]) -> List[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sec = results["series"]["per_second"]
    scr = results["series"]["per_scrape"]
    t = sec.get("t") or []
    ts = scr.get("t") or []
    marks = results.get("marks") or {}
    out: List[tuple[str, str]] = []

    def figure(title: str, x: Sequence[float], series: Dict[str, Sequence[Optional[float]]], ylabel: str,
               scale: float = 1.0) -> None:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        for label, col in series.items():
            ax.plot(x, [v * scale for v in _padded(col, len(x))], label=label, linewidth=1.4)
        for name, at in marks.items():
            ax.axvline(at, color="grey", linestyle=":", linewidth=0.8)
            ax.text(at, 1.0, name, rotation=90, fontsize=6, color="grey", va="top",
                    transform=ax.get_xaxis_transform())
        ax.set_title(title)
        ax.set_xlabel("seconds since start")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7, loc="best")
        out.append((title, _png(fig)))
        plt.close(fig)

    figure(PLOTS[0], t, {"nodes": sec.get("nodes", []), "Ready": sec.get("nodes_ready", []),
                         "tainted NoExecute": sec.get("nodes_tainted", [])}, "nodes")
    figure(PLOTS[1], ts, {"Lease PUT/s (apiserver_request_total)": scr.get("lease_writes_per_s", [])}, "writes/s")
    figure(PLOTS[2], ts, {q: scr.get(f"api_{q}_s", []) for q in ("p50", "p90", "p99")}, "seconds")
    figure(PLOTS[3], t, {k[5:]: v for k, v in sec.items() if k.startswith("pods_") and k != "pods_scheduled_total"},
           "pods")
    figure(PLOTS[4], ts, {k[4:]: v for k, v in scr.items() if k.startswith("cpu_")}, "cores")
    figure(PLOTS[5], ts, {k[4:]: v for k, v in scr.items() if k.startswith("rss_")}, "MiB", 1 / (1 << 20))
    return out


def write_html(results: Dict[str, Any], path: str) -> None:
    e = html.escape
    verdict = "all SLOs met" if results["passed"] else ("run failed: " + results["error"] if results["error"]
                                                        else "SLO failed")
    rows = "\n".join(
        f"<tr class=\"{'pass' if s['pass'] else 'fail'}\"><td>{e(s['measurement'])}</td><td>{e(s['name'])}</td>"
        f"<td>{e(_fmt(s['value']))}</td><td>{e(s['op'])} {e(_fmt(s['threshold']))}</td>"
        f"<td>{'pass' if s['pass'] else 'FAIL'}</td><td>{e(s.get('note', ''))}</td></tr>"
        for s in results["slos"])
    api_calls = (results["measurements"].get("APIResponsivenessPrometheus") or {}).get("calls") or []
    api_rows = "\n".join(
        f"<tr class=\"{'pass' if c['pass'] else 'fail'}\"><td>{e(c['verb'])}</td><td>{e(c['resource'])}</td>"
        f"<td>{e(c['subresource'])}</td><td>{e(c['scope'])}</td><td>{c['count']}</td>"
        f"<td>{_fmt(c['perc50'])}</td><td>{_fmt(c['perc90'])}</td><td>{_fmt(c['perc99'])}</td>"
        f"<td>{_fmt(c['threshold'])}</td></tr>" for c in api_calls)
    images = "\n".join(f"<h3>{e(title)}</h3><img alt=\"{e(title)}\" src=\"data:image/png;base64,{data}\">"
                       for title, data in _plots(results))
    measurements = {k: v for k, v in results["measurements"].items()}
    if "APIResponsivenessPrometheus" in measurements:
        measurements["APIResponsivenessPrometheus"] = {
            k: v for k, v in measurements["APIResponsivenessPrometheus"].items() if k != "calls"}
    profiles = "".join(f'<li><a href="{e(os.path.basename(path))}">{e(name)}</a></li>'
                       for name, path in (results.get("profiles") or {}).items())
    profiles = f"<h2>Profiles (py-spy)</h2><ul>{profiles}</ul>" if profiles else ""
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>megaplane bench {e(results['scenario'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
tr.pass td:nth-child(5) {{ color: #176b1d; }} tr.fail {{ background: #fde2e2; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>megaplane bench {e(results['scenario'])}: {e(verdict)}</h1>
<p>Started {e(results['started'])}, {results['seconds']:.0f} s. Nodes {results['config']['nodes']:,},
pods per node {results['config']['pods_per_node']}, Lease duration {results['config']['node_lease_duration_seconds']} s,
fleet processes {results['config']['processes']}, zones {results['config']['zones']}.</p>
{''.join(f'<p>Note: {e(n)}</p>' for n in results['notes'])}
<h2>SLIs and SLOs</h2>
<table><tr><th>measurement</th><th>SLI</th><th>value</th><th>SLO</th><th>result</th><th>note</th></tr>
{rows}
</table>
<h2>Plots</h2>
{images}
<h2>APIResponsivenessPrometheus</h2>
<table><tr><th>verb</th><th>resource</th><th>subresource</th><th>scope</th><th>count</th><th>p50 s</th><th>p90 s</th>
<th>p99 s</th><th>threshold s</th></tr>
{api_rows}
</table>
{profiles}
<h2>Measurements</h2>
<pre>{e(json.dumps(measurements, indent=1))}</pre>
<h2>Configuration</h2>
<pre>{e(json.dumps(results['config'], indent=1))}</pre>
</body></html>
"""
    with open(path, "w") as f:
        f.write(doc)
