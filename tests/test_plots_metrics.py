"""`dvc plots show` renders the study's plots to HTML with the data and the custom templates;
`dvc metrics show` and `dvc metrics diff` read summary.json. Both run on the committed CPU report, placed
where the default study's report stage writes it and committed there as a user would, so no pipeline run
is needed.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.repository import cells

from inference_study.config import load_params

DVC = [sys.executable, "-m", "dvc"]
REPORT = Path("reports") / "default"
COLOUR_BY = {"by_batch_size": "batch size", "by_backend": "backend", "pareto": "backend"}


@pytest.fixture
def reported(repo_copy: Path) -> Path:
    """The repository copy with the committed CPU run as its default study's report, committed (it is
    git-ignored, being each machine's own: `git add -f`, as a user keeping a run would)."""
    shutil.copytree(repo_copy / "reports" / "measured" / "cpu", repo_copy / REPORT)
    subprocess.run(["git", "add", "-f", str(REPORT)], cwd=repo_copy, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "kept run"], cwd=repo_copy,
                   check=True)
    return repo_copy


def dvc(repo: Path, *args: str) -> str:
    done = subprocess.run([*DVC, *args], cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "failed to load" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done.stdout


def rendered_specs(html: str) -> dict[str, dict]:
    """plot id → the Vega-Lite spec DVC embedded for it."""
    blocks = re.findall(
        r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec = (\{.*?\});\n', html
    )
    return {plot_id: json.loads(spec) for plot_id, spec in blocks}


def test_plots_show_renders_every_plot_with_its_data_and_colours(reported: Path) -> None:
    repo_copy = reported
    out = repo_copy.parent / "plots"
    dvc(repo_copy, "plots", "show", "-o", str(out))
    specs = rendered_specs((out / "index.html").read_text())
    declared = {
        name: props
        for entry in yaml.safe_load((repo_copy / "dvc.yaml").read_text())["plots"]
        for name, props in entry.items()
    }
    assert set(specs) == set(declared)
    rows = list(csv.DictReader((repo_copy / REPORT / "results.csv").open()))
    assert len(rows) == len(cells(load_params(repo_copy / REPORT / "inputs" / "params.yaml", legacy_ok=True))) > 1
    for name, props in declared.items():
        spec = specs[name]
        (y_field,) = props["y"].values()
        values = spec["data"]["values"]
        assert [(v[props["x"]], v[y_field], v["batch_size"], v["backend"]) for v in values] == [
            (r[props["x"]], r[y_field], r["batch_size"], r["backend"]) for r in rows
        ]
        if props["template"] == "pareto":  # faceted; draws y (total) against y / x (per user)
            encoding = spec["spec"]["encoding"]
            assert (encoding["x"]["field"], encoding["y"]["field"]) == ("total", "per user")
        else:
            encoding = spec["encoding"]
            assert encoding["x"]["field"] == props["x"] and encoding["y"]["field"] == y_field
        assert encoding["color"]["field"] == COLOUR_BY[props["template"]]
        assert spec["title"] == props["title"]


def test_metrics_show_reads_summary_json(reported: Path) -> None:
    repo_copy = reported
    shown = json.loads(dvc(repo_copy, "metrics", "show", "--json"))
    (workspace,) = shown.values()
    metrics = workspace["data"][str(REPORT / "summary.json")]["data"]
    assert metrics == json.loads((repo_copy / REPORT / "summary.json").read_text())
    baseline = load_params(repo_copy / REPORT / "inputs" / "params.yaml", legacy_ok=True).study.comparisons.baseline
    speedups = [key for key in metrics if ".speedup_over_" in key]
    suffixes = (f".speedup_over_{baseline}_geomean", f".speedup_over_{baseline}_geomean_ci_low",
                f".speedup_over_{baseline}_geomean_ci_high")
    assert speedups and all(key.endswith(suffixes) for key in speedups)
    assert {key.removesuffix("_ci_low").removesuffix("_ci_high") for key in speedups} == {
        key for key in speedups if key.endswith("_geomean")}, "each geomean with both ends of its interval"


def test_metrics_diff_compares_the_workspace_with_the_last_commit(reported: Path) -> None:
    repo_copy = reported
    """Rebuild the default report for one backend from its committed inputs: the diff shows what changed."""
    results = repo_copy.parent / "results"
    shutil.copytree(repo_copy / REPORT / "inputs", results)
    committed = json.loads((repo_copy / REPORT / "summary.json").read_text())
    cli = [sys.executable, "-m", "inference_study.cli"]
    subprocess.run([*cli, "compose", "sweep.backends=[hf_eager]"], cwd=repo_copy, check=True)
    subprocess.run(
        [*cli, "report", "--results", str(results)], cwd=repo_copy, check=True, capture_output=True
    )
    rebuilt = json.loads((repo_copy / REPORT / "summary.json").read_text())
    eager_cells = [c for c in cells(load_params(results / "params.yaml", legacy_ok=True)) if c.backend == "hf_eager"]
    assert rebuilt["cells_total"] == len(eager_cells) < committed["cells_total"]

    diff = json.loads(dvc(repo_copy, "metrics", "diff", "--json"))[str(REPORT / "summary.json")]
    old, new = committed["cells_total"], rebuilt["cells_total"]
    assert diff["cells_total"] == {"old": old, "new": new, "diff": new - old}
    assert diff["tiny_llama.hf_compiled_loop.max_output_tokens_per_s"]["new"] is None
    unchanged = "tiny_llama.hf_eager.max_output_tokens_per_s"
    assert unchanged not in diff and committed[unchanged] == rebuilt[unchanged]
