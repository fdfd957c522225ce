"""The run's results: latest.json, a Markdown summary and a timeline plot (PNG)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos import history


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def results(
    result_figures: dict[str, Any],
    faults: list[dict[str, Any]],
    recovery_s: dict[str, float | None],
    violations: list[dict[str, Any]],
    run: dict[str, Any],
) -> dict[str, Any]:
    """latest.json: the figures the issue names first, then the rest."""
    return {
        "operations": result_figures["operations"],
        "acknowledged": result_figures["acknowledged"],
        "unknown": result_figures["unknown"],
        "faults": [
            {**fault, "at": iso(fault["at"]), "healed_at": iso(fault["healed_at"])}
            for fault in faults
        ],
        "recovery_s": recovery_s,
        "violations": [
            {**v, "time": iso(v["time"])} if isinstance(v.get("time"), float) else v
            for v in violations
        ],
        **{
            k: v
            for k, v in result_figures.items()
            if k not in ("operations", "acknowledged", "unknown")
        },
        "run": run,
    }


def markdown(data: dict[str, Any]) -> str:
    run = data["run"]
    lines = [
        "# Chaos run",
        "",
        f"{run['profile']} profile, {run['started_at']}: {run['clients']} clients over HTTP "
        f"against two app instances (gunicorn, {run['workers_per_instance']} sync workers each), "
        f"through the fault proxy and PgBouncer (transaction pooling) to PostgreSQL "
        f"({run['database']}), with Redis; {run['duration_s']:.0f} s under load.",
        "",
        f"**{len(data['violations'])} violations.**",
        "",
        "| operations | acknowledged | refused | unknown (then resolved) | unresolved | attempts |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {data['operations']} | {data['acknowledged']} | {data['refused']} | "
        f"{data['unknown']} | {data['unresolved']} | {data['attempts']} |",
        "",
        "| operation | operations | acknowledged | p50 s | p99 s | max s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, counts in data["by_operation"].items():
        latency = data["latency_s"].get(name, {})
        lines.append(
            f"| {name} | {counts['operations']} | {counts['acknowledged']} | "
            f"{latency.get('p50')} | {latency.get('p99')} | {latency.get('max')} |"
        )
    lines += [
        "",
        f"Request bound: {run['request_bound_s']} s (gunicorn's timeout) + {run['margin_s']} s "
        f"margin; a client gives up on an attempt after {run['client_timeout_s']} s.",
        "",
        "## Faults",
        "",
        "| kind | injected | at (UTC) | lasted s | recovery s | detail |",
        "|---|---|---|---:|---:|---|",
    ]
    for fault in data["faults"]:
        lasted = (
            datetime.fromisoformat(fault["healed_at"]) - datetime.fromisoformat(fault["at"])
        ).total_seconds()
        lines.append(
            f"| {fault['kind']} | {'yes' if fault['injected'] else '**no**'} | "
            f"{fault['at'][11:23]} | {lasted:.1f} | {fault['recovery_s']} | {fault['detail']} |"
        )
    lines += [
        "",
        "Recovery: from a fault's heal to the first acknowledged booking sent after it "
        "(worst of each kind).",
        "",
        "| kind | recovery s |",
        "|---|---:|",
    ]
    lines += [f"| {kind} | {value} |" for kind, value in data["recovery_s"].items()]
    for kind, reason in run.get("skipped", {}).items():
        lines.append(f"| {kind} | skipped: {reason} |")
    lines += ["", "## Answers", "", "| answer | attempts |", "|---|---:|"]
    lines += [f"| {answer} | {count} |" for answer, count in data["answers"].items()]
    lines += ["", "## Violations", ""]
    if not data["violations"]:
        lines.append("None.")
    kinds = Counter(v["kind"] for v in data["violations"])
    for kind, count in sorted(kinds.items()):
        lines.append(f"- **{kind}** ({count})")
        examples = [v for v in data["violations"] if v["kind"] == kind][:5]
        lines += [f"  - {v['detail']}" for v in examples]
    lines += ["", "![Timeline](latest.png)", ""]
    return "\n".join(lines)


def plot(history_path: Path, data: dict[str, Any], path: Path) -> bool:
    """Operations per second and errors per second, faults shaded. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    started = data["run"]["started_epoch"]
    counts: dict[str, Counter[int]] = {
        name: Counter() for name in ("acknowledged", "refused", "503", "unknown", "500")
    }
    for event in history.read(history_path):
        kind = event["type"]
        if kind in ("invoke", "nemesis"):
            continue
        second = int(event["time"] - started)
        status = event.get("status") or 0
        if kind == "ok":
            counts["acknowledged"][second] += 1
        elif kind == "unknown":
            counts["unknown"][second] += 1
        elif status == 503 or event.get("code") in ("idempotency_in_progress", "rate_limited"):
            counts["503"][second] += 1
        elif status >= 500:
            counts["500"][second] += 1
        else:
            counts["refused"][second] += 1
    end = max((max(c) for c in counts.values() if c), default=1) + 1
    seconds = list(range(end))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(13, 7), sharex=True)
    series = (
        (top, "acknowledged", "#2a7", 1, "acknowledged (2xx)"),
        (top, "refused", "#888", 1, "refused (4xx: sold out, taken, invalid state)"),
        (bottom, "503", "#e90", 1, "503 / 409 in progress (retried)"),
        (bottom, "unknown", "#c33", 1, "unknown: no answer (retried)"),
        (bottom, "500", "#000", 1.5, "500"),
    )
    for axes, name, line_color, width, label in series:
        axes.plot(
            seconds, [counts[name][s] for s in seconds], color=line_color, lw=width, label=label
        )
    top.set_ylabel("answers / s")
    bottom.set_ylabel("errors / s")
    bottom.set_xlabel("seconds since start")
    palette = plt.get_cmap("tab20")
    kinds = sorted({fault["kind"] for fault in data["faults"]})
    for fault in data["faults"]:
        at = datetime.fromisoformat(fault["at"]).timestamp() - started
        healed = datetime.fromisoformat(fault["healed_at"]).timestamp() - started
        color = palette(kinds.index(fault["kind"]) % 20)
        for axis in (top, bottom):
            axis.axvspan(at, max(healed, at + 0.5), color=color, alpha=0.3, lw=0)
        top.text(
            at,
            1.01,
            fault["kind"],
            transform=top.get_xaxis_transform(),
            rotation=60,
            fontsize=6,
            va="bottom",
        )
    top.legend(loc="upper right", fontsize=7)
    bottom.legend(loc="upper right", fontsize=7)
    figure.suptitle(
        f"Reservo under faults ({data['run']['profile']} profile): {data['operations']} "
        f"operations, {data['acknowledged']} acknowledged, {data['unknown']} unknown, "
        f"{len(data['violations'])} violations",
        fontsize=10,
        y=0.99,
    )
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.08, top=0.80, hspace=0.08)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(out: Path, data: dict[str, Any], history_path: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(data))
    plot(history_path, data, out / "latest.png")
