"""Summarise raw measurements into figures, and write them as a table, JSON and a chart."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # draws to files only, so no display is needed
import matplotlib.pyplot as plt

MB = 1_000_000
MODE_TEXT = {"load": "applied while sending", "backlog": "backlog drained"}
MODE_SHORT = {"load": "while sending", "backlog": "backlog"}

# The sample's targets: (figure id, comparison, limit, wording).
TARGETS = {
    "throughput_load_ratio_1key": (">=", 0.8, "sample worker >= 80% of bare"),
    "throughput_load_ratio_100keys": (">=", 0.8, "sample worker >= 80% of bare"),
    "throughput_backlog_ratio_1key": (">=", 0.8, "sample worker >= 80% of bare"),
    "throughput_backlog_ratio_100keys": (">=", 0.8, "sample worker >= 80% of bare"),
    "latency_p50_ratio": ("<=", 3.0, "counter_workflow p50 <= 3x no-op p50"),
    "demo_client_seconds": ("<", 2.0, "one demo client run < 2 s"),
}


@dataclass(frozen=True)
class Figure:
    """One reported number: the median of `n` values, with their min and max as the spread."""

    id: str
    label: str
    unit: str
    median: float
    min: float
    max: float
    n: int
    target: str | None = None
    met: bool | None = None


def summarise(figure_id: str, label: str, unit: str, values: list[float]) -> Figure:
    median = statistics.median(values)
    target = TARGETS.get(figure_id)
    met = None
    if target is not None:
        comparison, limit, _ = target
        met = {">=": median >= limit, "<=": median <= limit, "<": median < limit}[comparison]
    return Figure(
        figure_id,
        label,
        unit,
        median,
        min(values),
        max(values),
        len(values),
        target[2] if target else None,
        met,
    )


def percentile(values: list[float], percent: int) -> float:
    """Return the `percent` percentile, interpolated; the only value when there is one."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def key_label(keys: str) -> str:
    return "1key" if keys == "1" else f"{keys}keys"


def keys_text(keys: str) -> str:
    return "1 key" if keys == "1" else f"{keys} keys"


def rates(runs: list[dict[str, float]]) -> list[float]:
    return [run["signals"] / run["apply_seconds"] for run in runs]


def throughput_figures(raw: dict[str, Any]) -> list[Figure]:
    figures = []
    for mode, by_kind in raw["throughput"].items():
        for keys in by_kind["sample"]:
            by_kind_rates = {kind: rates(by_kind[kind][keys]) for kind in ("sample", "bare")}
            for kind, values in by_kind_rates.items():
                figures.append(
                    summarise(
                        f"throughput_{mode}_{kind}_{key_label(keys)}",
                        f"{MODE_TEXT[mode]}, {kind} worker, {keys_text(keys)}",
                        "signals/s",
                        values,
                    )
                )
            for kind in ("sample", "bare"):
                figures.append(
                    summarise(
                        f"throughput_{mode}_cpu_{kind}_{key_label(keys)}",
                        f"{MODE_TEXT[mode]}, {kind} worker CPU per signal, {keys_text(keys)}",
                        "us",
                        [1e6 * r["worker_cpu_seconds"] / r["signals"] for r in by_kind[kind][keys]],
                    )
                )
            ratios = [
                sample / bare
                for sample, bare in zip(by_kind_rates["sample"], by_kind_rates["bare"], strict=True)
            ]
            figures.append(
                summarise(
                    f"throughput_{mode}_ratio_{key_label(keys)}",
                    f"{MODE_TEXT[mode]}, sample/bare, {keys_text(keys)}",
                    "ratio",
                    ratios,
                )
            )
    for mode, by_count in raw["scale_out"].items():
        for workers, by_keys in by_count.items():
            for keys, runs in by_keys.items():
                figures.append(
                    summarise(
                        f"scale_out_{mode}_{workers}workers_{key_label(keys)}",
                        f"{MODE_TEXT[mode]}, {workers} x worker.py, {keys_text(keys)}",
                        "signals/s",
                        rates(runs),
                    )
                )
    return figures


def latency_figures(raw: dict[str, Any]) -> list[Figure]:
    samples = {name: [s * 1000 for s in values] for name, values in raw["latency_seconds"].items()}
    figures = []
    for name in ("noop", "counter_workflow"):
        values = samples[name]
        for percent in (50, 95):
            figures.append(
                Figure(
                    f"latency_{name}_p{percent}",
                    f"{name} schedule to completion, p{percent}",
                    "ms",
                    percentile(values, percent),
                    min(values),
                    max(values),
                    len(values),
                )
            )
    ratios = [c / n for c, n in zip(samples["counter_workflow"], samples["noop"], strict=True)]
    ratio = statistics.median(samples["counter_workflow"]) / statistics.median(samples["noop"])
    target = TARGETS["latency_p50_ratio"]
    figures.append(
        Figure(
            "latency_p50_ratio",
            "counter_workflow p50 / no-op p50",
            "ratio",
            ratio,
            min(ratios),
            max(ratios),
            len(ratios),
            target[2],
            ratio <= target[1],
        )
    )
    calls = raw["entity_calls_per_orchestration"]
    per_call = [
        (e - n) / calls for e, n in zip(samples["entity_calls"], samples["noop"], strict=True)
    ]
    figures.append(
        Figure(
            "call_entity_round_trip",
            "one call_entity round trip",
            "ms",
            (statistics.median(samples["entity_calls"]) - statistics.median(samples["noop"]))
            / calls,
            min(per_call),
            max(per_call),
            len(per_call),
        )
    )
    return figures


def build_results(
    *,
    name: str,
    started: datetime,
    machine: dict[str, Any],
    sizes: dict[str, Any],
    quick: bool,
    raw: dict[str, Any],
) -> dict[str, Any]:
    """Return the whole record of a run: machine, sizes, figures and raw measurements."""
    figures = [
        summarise(
            "worker_startup_seconds",
            "worker.py launch to first operation applied",
            "s",
            raw["startup_seconds"],
        ),
        *throughput_figures(raw),
        *latency_figures(raw),
        summarise(
            "demo_client_seconds", "one `python client.py` run, wall time", "s", raw["demo_seconds"]
        ),
        summarise(
            "worker_peak_rss_mb",
            "worker.py peak RSS after the throughput runs",
            "MB",
            [raw["worker_peak_rss_bytes"] / MB],
        ),
        summarise(
            "scheduler_peak_rss_mb",
            "local scheduler peak RSS, largest at the end",
            "MB",
            [max(raw["scheduler_peak_rss_bytes"].values()) / MB],
        ),
    ]
    return {
        "name": name,
        "started": started.isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine,
        "sizes": sizes,
        "figures": [asdict(figure) for figure in figures],
        "raw": raw,
    }


def format_number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(results: dict[str, Any]) -> str:
    """Return the figures as a Markdown table, headed by the machine they were measured on."""
    machine = results["machine"]
    lines = [
        f"Machine: {machine['cpu_model']}, {machine['cpu_count']} cores "
        f"({machine['usable_cores']} usable), Python {machine['python']}, "
        f"durabletask {machine['durabletask']}; load average "
        f"{machine['load_average_at_start'][0]:.2f} at start, "
        f"{machine['load_average_at_end'][0]:.2f} at end",
        "",
        "| figure | id | median | min to max | n | target |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for figure in results["figures"]:
        target = ""
        if figure["target"]:
            target = f"{'met' if figure['met'] else 'MISSED'}: {figure['target']}"
        lines.append(
            f"| {figure['label']} | `{figure['id']}` | {format_number(figure['median'])} "
            f"{figure['unit']} | {format_number(figure['min'])} to {format_number(figure['max'])} "
            f"| {figure['n']} | {target} |"
        )
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def draw_chart(results: dict[str, Any], path: Path) -> Path:
    """Draw throughput against keys and workers, and the latency distributions, as a PNG."""
    figures = {figure["id"]: figure for figure in results["figures"]}
    raw = results["raw"]
    machine = results["machine"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))

    ax = axes[0][0]
    groups = [(mode, keys) for mode in raw["throughput"] for keys in ("1", "100")]
    for offset, kind in ((-0.2, "sample"), (0.2, "bare")):
        values = [figures[f"throughput_{mode}_{kind}_{key_label(k)}"] for mode, k in groups]
        ax.bar(
            [i + offset for i in range(len(groups))],
            [v["median"] for v in values],
            width=0.4,
            yerr=_error_bars(values),
            capsize=4,
            label=f"{kind} worker",
        )
    ax.set_xticks(range(len(groups)), [f"{MODE_SHORT[mode]}\n{keys_text(k)}" for mode, k in groups])
    ax.set_ylabel("signals applied per second")
    ax.set_title("Throughput: worker.py against a bare worker")
    ax.legend()

    ax = axes[0][1]
    for mode, by_count in raw["scale_out"].items():
        workers = sorted(int(count) for count in by_count)
        for keys in ("1", "100"):
            values = [figures[f"scale_out_{mode}_{n}workers_{key_label(keys)}"] for n in workers]
            ax.errorbar(
                workers,
                [v["median"] for v in values],
                yerr=_error_bars(values),
                capsize=4,
                marker="o",
                linestyle="-" if mode == "backlog" else "--",
                label=f"{MODE_TEXT[mode]}, {keys_text(keys)}",
            )
        ax.set_xticks(workers)
    ax.set_xlabel("worker.py processes")
    ax.set_ylabel("signals applied per second")
    ax.set_title("Scale-out on one machine")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")

    ax = axes[1][0]
    latency = raw["latency_seconds"]
    names = ["noop", "counter_workflow", "entity_calls"]
    ax.boxplot([[s * 1000 for s in latency[n]] for n in names], whis=(5, 95))
    calls = raw["entity_calls_per_orchestration"]
    ax.set_xticks(range(1, 4), ["no-op", "counter_workflow", f"{calls} x call_entity"])
    ax.set_ylabel("schedule to completion, ms")
    ax.set_title("Orchestration latency (whiskers: p5 to p95)")
    ax.set_ylim(bottom=0)

    ax = axes[1][1]
    ax.boxplot([raw["demo_seconds"], raw["startup_seconds"]], whis=(0, 100))
    ax.set_xticks([1, 2], ["client.py run", "worker.py start-up"])
    ax.set_ylabel("seconds")
    ax.axhline(2.0, color="grey", linestyle="--", linewidth=1)
    ax.set_title("Demo client and worker start-up (dashed: 2 s target)")
    ax.set_ylim(bottom=0)

    fig.suptitle(
        f"{results['name']}: {machine['cpu_model']}, {machine['cpu_count']} cores, "
        f"durabletask {machine['durabletask']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _error_bars(values: list[dict[str, Any]]) -> list[list[float]]:
    return [[v["median"] - v["min"] for v in values], [v["max"] - v["median"] for v in values]]
