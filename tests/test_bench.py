"""Smoke test of the benchmark: the quick mode on tiny sizes produces every figure.

It checks that each figure is there and is a number, never how fast anything is.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

FIGURE_IDS = {
    "worker_startup_seconds",
    *(
        f"throughput_{mode}_{kind}_{keys}"
        for mode in ("load", "backlog")
        for kind in ("sample", "bare", "ratio", "cpu_sample", "cpu_bare")
        for keys in ("1key", "100keys")
    ),
    *(
        f"scale_out_{mode}_{workers}workers_{keys}"
        for mode in ("load", "backlog")
        for workers in (1, 2, 4)
        for keys in ("1key", "100keys")
    ),
    "latency_noop_p50",
    "latency_noop_p95",
    "latency_counter_workflow_p50",
    "latency_counter_workflow_p95",
    "latency_p50_ratio",
    "call_entity_round_trip",
    "demo_client_seconds",
    "worker_peak_rss_mb",
    "scheduler_peak_rss_mb",
}


def run_bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.e2e
def test_quick_bench_reports_every_figure(tmp_path: Path) -> None:
    result = run_bench(
        "--quick",
        "--signals",
        "100",
        "--repetitions",
        "1",
        "--latency-samples",
        "2",
        "--out",
        str(tmp_path),
        "--name",
        "smoke",
    )
    assert result.returncode == 0, result.stdout + result.stderr

    results = json.loads((tmp_path / "smoke.json").read_text())
    figures = {figure["id"]: figure for figure in results["figures"]}
    assert set(figures) == FIGURE_IDS
    for figure in figures.values():
        assert math.isfinite(figure["median"]), figure
        if figure["unit"] == "us":
            # CPU time comes from /proc in clock ticks of 10 ms, so 100 signals may
            # round to zero. The figure must still be present and not negative.
            assert figure["median"] >= 0, figure
        else:
            assert figure["median"] > 0, figure
        assert figure["min"] <= figure["median"] <= figure["max"], figure
        assert f"`{figure['id']}`" in result.stdout, figure["id"]

    machine = results["machine"]
    assert machine["cpu_model"]
    assert machine["cpu_count"] >= 1
    assert machine["cpu_model"] in result.stdout

    chart = tmp_path / "smoke.png"
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bench_rejects_too_few_signals() -> None:
    result = run_bench("--signals", "5", timeout=60)

    assert result.returncode == 2
    assert "--signals 5 must be at least 100" in result.stderr


@pytest.mark.parametrize("target", ["bench", "bench-quick"])
def test_bench_make_targets_documented(target: str) -> None:
    result = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"make {target}" in (ROOT / "README.md").read_text()
