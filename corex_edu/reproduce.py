"""The main job: execute the notebooks with papermill and summarise their results.

``python -m corex_edu reproduce --profile standard`` runs every notebook into
``results/<profile>/``, writes a static HTML copy beside each executed notebook, and writes
``summary.json`` and ``summary.md``. A notebook whose data is absent is reported as skipped with
the fix, and the others still run. The exit status is non-zero only when a notebook fails for
another reason.

A failing notebook leaves its partially executed copy (and that copy's HTML) in the results
folder. papermill (checked with 2.7.0) inserts a red banner at the top that links to the anchor
``#papermill-error-cell``, which it places just above the failing cell. :func:`mark_failure`
adds a heading above the banner that names the error, so the reason shows without scrolling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import nbformat
import torch
from papermill import exceptions as papermill_errors

from corex_edu import atomic, paths, results
from corex_edu.data import status
from corex_edu.errors import ConfigurationError
from corex_edu.profiles import resolve_device, resolve_profile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    """A metric that a notebook records, with the value Gao et al. (AISTATS 2019) report for it.

    ``paper_setting`` describes their set-up where it differs from ours; it is added to the row's note.
    """

    name: str
    unit: str
    paper: float | None = None
    paper_setting: str = ""


PAPER_ANCHOR_VAE = "paper: 2,048 latents on the CelebA data set"
PAPER_CELEBA_VAE = "paper: a 128-latent VAE on the CelebA data set; 'around 20%' is read off its Fig. 7a"


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
    "03": NotebookSpec(
        "03",
        "03_stacked_corex_mnist.ipynb",
        requires=("mnist",),
        metrics=(
            Metric("unsupervised_accuracy", "fraction", 0.85),
            Metric("mi_top1_nats", "nats", 2.71),
            Metric("mi_top2_nats", "nats", 2.56),
            Metric("tc_z1_nats", "nats"),
            Metric("tc_z2_nats", "nats"),
            Metric("epoch_seconds", "seconds"),
        ),
    ),
    "04": NotebookSpec(
        "04",
        "04_anchorvae_celeba.ipynb",
        requires=("celeba",),
        metrics=(
            Metric("anchored_mi_mean_nats", "nats", 3.5, PAPER_ANCHOR_VAE),
            Metric("anchored_in_top5_fraction", "fraction", 1.0, PAPER_ANCHOR_VAE),
            Metric("vae_top1_mi_nats", "nats", 3.1, PAPER_ANCHOR_VAE),
            Metric("anchored_attribute_gap_mean", "fraction"),
            Metric("vae_top5_attribute_gap_mean", "fraction"),
            Metric("images_used", "images"),
            Metric("images_skipped", "images"),
        ),
    ),
    "05": NotebookSpec(
        "05",
        "05_aggregate_posterior_sampling.ipynb",
        requires=("mnist", "celeba"),
        metrics=(
            Metric("celeba_var_gt2_fraction", "fraction", 0.2, PAPER_CELEBA_VAE),
            Metric("celeba_fd_prior", "feature units^2"),
            Metric("celeba_fd_aggregate", "feature units^2"),
            Metric("celeba_precision_prior", "fraction"),
            Metric("celeba_precision_aggregate", "fraction"),
            Metric("celeba_recall_prior", "fraction"),
            Metric("celeba_recall_aggregate", "fraction"),
            Metric("mnist_fd_prior", "feature units^2"),
            Metric("mnist_fd_aggregate", "feature units^2"),
            Metric("mnist_precision_prior", "fraction"),
            Metric("mnist_precision_aggregate", "fraction"),
            Metric("mnist_recall_prior", "fraction"),
            Metric("mnist_recall_aggregate", "fraction"),
        ),
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


FAILURE_BANNER_TAG = "corex-edu-failure-banner"
# papermill (checked with 2.7.0) puts <span id="papermill-error-cell"> in a markdown cell just above the failing cell.
PAPERMILL_ANCHOR = "papermill-error-cell"


def mark_failure(executed: str | Path, message: str) -> None:
    """Insert a heading cell that names the error at the top of a partially executed notebook, atomically.

    The heading links to papermill's anchor above the failing cell when papermill wrote one. A
    banner from an earlier call is replaced, not repeated.
    """
    executed = Path(executed)
    notebook = nbformat.read(executed, as_version=4)
    notebook.cells = [cell for cell in notebook.cells if FAILURE_BANNER_TAG not in cell.get("metadata", {}).get("tags", [])]
    anchored = any(cell.cell_type == "markdown" and f'id="{PAPERMILL_ANCHOR}"' in cell.source for cell in notebook.cells)
    where = (
        f"[Go to the failing cell](#{PAPERMILL_ANCHOR}): its error output shows the traceback. "
        "Cells after it did not run and have no outputs, because papermill clears every output before it starts."
        if anchored
        else "papermill marked no failing cell: either every cell ran and a check after the run failed, "
        "or the kernel died or timed out, and then the last cell with outputs is where the run stopped."
    )
    # Inline code keeps Markdown and HTML in the error text from being rendered.
    summary = " ".join(message.split()).replace("`", "'")
    banner = nbformat.v4.new_markdown_cell(f"## This run failed: `{summary}`\n\n{where}", metadata={"tags": [FAILURE_BANNER_TAG]})
    notebook.cells.insert(0, banner)
    atomic.write_text(executed, nbformat.writes(notebook))


def export_html(executed: str | Path) -> Path:
    """Write a static HTML copy of an executed notebook next to it (``name.html``), atomically, and return its path."""
    from nbconvert import HTMLExporter

    executed = Path(executed)
    # The name becomes the page title; without it every copy is titled "Notebook".
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4), resources={"metadata": {"name": executed.stem}})
    html_path = executed.with_suffix(".html")
    atomic.write_text(html_path, body)
    return html_path


def with_paper(row: results.Row, metric: Metric) -> results.Row:
    """Return ``row`` with the registry's paper value, and the paper's set-up appended to its note."""
    if metric.paper is None:
        return row
    note = "; ".join(part for part in (row.note, metric.paper_setting) if part)
    return replace(row, paper=metric.paper, note=note)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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

    run_started_at, run_started = _utc_now(), time.perf_counter()
    rows: list[results.Row] = []
    notebook_entries: list[dict[str, Any]] = []
    failed = False
    for spec in specs:
        started = time.perf_counter()
        entry: dict[str, Any] = {"notebook": spec.notebook, "status": "ok", "started_at": _utc_now(), "seconds": 0.0, "output": "", "html": "", "note": ""}
        missing = missing_requirements(spec)
        if missing:
            note = "; ".join(f"{m.name} missing at {m.location}: {m.fix}" for m in missing)
            report(f"notebook {spec.notebook} skipped: {note}")
            rows += [results.Row(spec.notebook, metric.name, None, metric.unit, seeds=0, paper=metric.paper, status="skipped", note=note) for metric in spec.metrics]
            notebook_entries.append({**entry, "status": "skipped", "note": note})
            continue

        output = output_dir / spec.filename
        metrics_file = results.metrics_path(output_dir, spec.notebook)
        for stale in (metrics_file, output, output.with_suffix(".html")):  # never report an earlier run's files
            stale.unlink(missing_ok=True)
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
            # The paper's values come from the registry; a notebook records only its own measurements.
            rows += [with_paper(recorded[metric.name], metric) for metric in spec.metrics]
            rows += [row for name, row in recorded.items() if name not in {metric.name for metric in spec.metrics}]
        except Exception as error:  # a failing notebook must not stop the others
            failed = True
            message = _describe_failure(error)
            report(f"notebook {spec.notebook} FAILED: {message}")
            entry.update(status="failed", note=message)
        entry["seconds"] = round(time.perf_counter() - started, 1)
        if output.exists():
            entry["output"] = str(output)
            entry["html"] = _finish_executed_copy(output, entry["note"] if entry["status"] == "failed" else None, report)
        if entry["status"] == "failed":
            where = entry["html"] or entry["output"]
            note = f"not measured: the notebook failed ({entry['note']}); " + (f"see {where}" if where else "no executed copy was written")
            rows += [results.Row(spec.notebook, metric.name, None, metric.unit, seeds=0, paper=metric.paper, status="skipped", note=note) for metric in spec.metrics]
        notebook_entries.append(entry)
        report(f"notebook {spec.notebook}: {entry['status']} in {entry['seconds']:.1f} s")

    header = {
        "profile": profile,
        "device": str(torch_device),
        "torch": torch.__version__,
        "started_at": run_started_at,
        "seconds": round(time.perf_counter() - run_started, 1),
        "versions": results.collect_versions(torch_device),
    }
    json_path, markdown_path = results.write_summary(output_dir, header, rows, notebook_entries)
    report(f"wrote {json_path} and {markdown_path}")
    return 1 if failed else 0


def _finish_executed_copy(executed: Path, failure: str | None, report: Callable[[str], None]) -> str:
    """Mark a failed copy with :func:`mark_failure`, export its HTML and return the HTML path ("" if the export failed).

    Errors are reported and not raised, so one unreadable copy does not stop the other notebooks.
    """
    try:
        if failure is not None:
            mark_failure(executed, failure)
        return str(export_html(executed))
    except Exception as error:  # nbformat and nbconvert raise many types
        report(f"could not mark or export {executed}: {type(error).__name__}: {error}")
        return ""
