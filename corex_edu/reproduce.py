"""The main job: execute the notebooks with papermill and summarise their results.

``python -m corex_edu reproduce --profile standard`` runs every notebook into
``results/<profile>/`` and writes ``summary.json`` and ``summary.md``. A notebook whose data is
absent is reported as skipped with the fix, and the others still run. The exit status is
non-zero only when a notebook fails for another reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from papermill import exceptions as papermill_errors

from corex_edu import paths, results
from corex_edu.data import status
from corex_edu.errors import ConfigurationError
from corex_edu.profiles import resolve_device, resolve_profile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    paper: float | None = None


@dataclass(frozen=True)
class NotebookSpec:
    """A notebook of the sequence, the data it needs and the metrics it must record."""

    notebook: str
    filename: str
    requires: tuple[str, ...]
    metrics: tuple[Metric, ...]


NOTEBOOKS: dict[str, NotebookSpec] = {
    "01": NotebookSpec(
        "01",
        "01_total_correlation_toy_gaussians.ipynb",
        requires=(),
        metrics=(Metric("tc_bound_gap_nats", "nats"), Metric("tc_bound_gap_underfit_nats", "nats")),
    ),
    "02": NotebookSpec(
        "02",
        "02_corex_bound_equals_vae_elbo.ipynb",
        requires=("mnist",),
        metrics=(Metric("elbo_identity_max_abs_error", "nats"), Metric("tc_lower_bound_binarized_mnist_nats", "nats")),
    ),
}


def select_notebooks(only: str | list[str] | None) -> list[NotebookSpec]:
    """Return the specs named in ``only`` ("01,02" or a list), or all of them."""
    if only is None or only == "" or only == []:
        return list(NOTEBOOKS.values())
    names = [part.strip() for part in (only.split(",") if isinstance(only, str) else only) if part.strip()]
    unknown = [name for name in names if name not in NOTEBOOKS]
    if unknown:
        raise ConfigurationError(f"unknown notebook {', '.join(unknown)}; available: {', '.join(NOTEBOOKS)} (for example --only 01,02)")
    return [NOTEBOOKS[name] for name in sorted(set(names))]


def _describe_failure(error: Exception) -> str:
    if isinstance(error, papermill_errors.PapermillExecutionError):
        value = str(error.evalue).strip().splitlines()
        return f"cell {error.exec_count} raised {error.ename}" + (f": {value[-1]}" if value else "")
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1]}" if text else type(error).__name__


def missing_requirements(spec: NotebookSpec) -> list[status.DatasetStatus]:
    checks = {"mnist": lambda: status.mnist_status(verify_checksums=False), "celeba": status.celeba_status}
    return [report for report in (checks[name]() for name in spec.requires) if not report.ready]


def reproduce(
    profile: str | None = None,
    only: str | list[str] | None = None,
    device: str = "auto",
    results_dir: str | Path | None = None,
    report: Callable[[str], None] = logger.info,
) -> int:
    """Run the selected notebooks and write the summary; return the process exit status (0 or 1)."""
    import papermill

    profile = resolve_profile(profile)
    torch_device = resolve_device(device)
    specs = select_notebooks(only)
    output_dir = Path(results_dir) if results_dir is not None else results.default_results_dir(profile)
    output_dir.mkdir(parents=True, exist_ok=True)

    rows: list[results.Row] = []
    notebook_entries = []
    failed = False
    for spec in specs:
        started = time.perf_counter()
        entry = {"notebook": spec.notebook, "status": "ok", "seconds": 0.0, "output": "", "note": ""}
        missing = missing_requirements(spec)
        if missing:
            note = "; ".join(f"{m.name} missing at {m.location}: {m.fix}" for m in missing)
            report(f"notebook {spec.notebook} skipped: {note}")
            rows += [results.Row(spec.notebook, metric.name, None, metric.unit, seeds=0, paper=metric.paper, status="skipped", note=note) for metric in spec.metrics]
            notebook_entries.append({**entry, "status": "skipped", "note": note})
            continue

        output = output_dir / spec.filename
        metrics_file = results.metrics_path(output_dir, spec.notebook)
        metrics_file.unlink(missing_ok=True)
        report(f"notebook {spec.notebook}: running {spec.filename} with profile {profile} on {torch_device}")
        try:
            papermill.execute_notebook(
                str(paths.NOTEBOOKS_DIR / spec.filename),
                str(output),
                parameters={"profile": profile, "device": str(device), "results_dir": str(output_dir)},
                kernel_name="python3",
                cwd=str(paths.NOTEBOOKS_DIR),
                progress_bar=False,
            )
            recorded = {row.metric: row for row in results.read_rows(metrics_file)}
            absent = [metric.name for metric in spec.metrics if metric.name not in recorded]
            if absent:
                raise RuntimeError(f"the notebook ran but did not record {', '.join(absent)}")
            rows += [recorded[metric.name] for metric in spec.metrics]
            rows += [row for name, row in recorded.items() if name not in {metric.name for metric in spec.metrics}]
        except Exception as error:  # a failing notebook must not stop the others
            failed = True
            message = _describe_failure(error)
            note = f"not measured: the notebook failed ({message}); see {output}"
            report(f"notebook {spec.notebook} FAILED: {message}")
            rows += [results.Row(spec.notebook, metric.name, None, metric.unit, seeds=0, paper=metric.paper, status="skipped", note=note) for metric in spec.metrics]
            entry.update(status="failed", note=message)
        entry["seconds"] = round(time.perf_counter() - started, 1)
        entry["output"] = str(output)
        notebook_entries.append(entry)
        report(f"notebook {spec.notebook}: {entry['status']} in {entry['seconds']:.1f} s")

    header = {"profile": profile, "device": str(torch_device), "torch": torch.__version__}
    json_path, markdown_path = results.write_summary(output_dir, header, rows, notebook_entries)
    report(f"wrote {json_path} and {markdown_path}")
    return 1 if failed else 0
