"""The main job's records, run on a temporary two-notebook registry: one notebook records a metric, one raises."""

import json
import platform
from datetime import datetime

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from corex_edu import paths, reproduce

GOOD, BAD = "91", "92"
FAILING_SOURCE = "raise ZeroDivisionError('the failing cell')"


def write_notebook(path, cells):
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run the main job once over both notebooks; return (exit status, summary, output folder, report lines)."""
    source = tmp_path_factory.mktemp("notebooks")
    output = tmp_path_factory.mktemp("results")
    # No parameters cell: papermill injects profile, device and results_dir at the top.
    write_notebook(
        source / "91_records.ipynb",
        [new_code_cell(f"from corex_edu import results\nprint('recording the answer')\nresults.record('{GOOD}', [results.Row('{GOOD}', 'answer_nats', 0.5, 'nats')], results_dir)")],
    )
    write_notebook(
        source / "92_raises.ipynb",
        [new_markdown_cell("# A notebook that fails"), new_code_cell("value = 1"), new_code_cell(FAILING_SOURCE), new_code_cell("print('never runs')")],
    )
    registry = {
        GOOD: reproduce.NotebookSpec(GOOD, "91_records.ipynb", requires=(), metrics=(reproduce.Metric("answer_nats", "nats", paper=0.75, paper_setting="paper: a larger model"),)),
        BAD: reproduce.NotebookSpec(BAD, "92_raises.ipynb", requires=(), metrics=(reproduce.Metric("never_recorded", "nats", paper=1.0),)),
    }
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "NOTEBOOKS_DIR", source)
        patch.setattr(reproduce, "NOTEBOOKS", registry)
        status = reproduce.reproduce("quick", device="cpu", results_dir=output, report=lines.append)
    summary = json.loads((output / "summary.json").read_text())
    return status, summary, output, lines


def entry(summary, notebook):
    return next(item for item in summary["notebooks"] if item["notebook"] == notebook)


def test_failure_gives_status_one(run):
    status, summary, _, _ = run
    assert status == 1
    assert entry(summary, GOOD)["status"] == "ok"
    assert entry(summary, BAD)["status"] == "failed"


def test_contract_fields_kept(run):
    _, summary, output, _ = run
    assert summary["profile"] == "quick"
    assert summary["device"] == "cpu"
    assert summary["torch"] == torch.__version__
    good_row = next(row for row in summary["rows"] if row["notebook"] == GOOD)
    assert good_row["metric"] == "answer_nats"
    assert good_row["value"] == 0.5
    assert good_row["status"] == "ok"
    # The notebook records no paper value; the summary takes it from the registry.
    assert good_row["paper"] == 0.75
    assert good_row["note"] == "paper: a larger model"
    assert json.loads((output / "metrics" / f"{GOOD}.json").read_text())[0]["paper"] is None


def test_failed_row_points_to_html(run):
    _, summary, output, _ = run
    bad_row = next(row for row in summary["rows"] if row["notebook"] == BAD)
    assert bad_row["status"] == "skipped"
    assert "ZeroDivisionError: the failing cell" in bad_row["note"]
    assert str(output / "92_raises.html") in bad_row["note"]


def test_versions_record(run):
    _, summary, _, _ = run
    versions = summary["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == torch.__version__
    assert versions["cuda_device"] is None
    for key in ("platform", "numpy", "scipy", "papermill", "nbformat", "ipywidgets", "corex_edu", "cpu_count", "torch_threads", "git_commit", "git_dirty"):
        assert key in versions, key


def test_per_notebook_timing(run):
    _, summary, _, _ = run
    run_start = datetime.fromisoformat(summary["started_at"])
    for notebook in (GOOD, BAD):
        item = entry(summary, notebook)
        assert datetime.fromisoformat(item["started_at"]) >= run_start
        assert item["seconds"] > 0.0
    assert summary["seconds"] >= entry(summary, GOOD)["seconds"] + entry(summary, BAD)["seconds"]


def test_html_written_beside_copy(run):
    _, summary, output, _ = run
    item = entry(summary, GOOD)
    assert item["output"] == str(output / "91_records.ipynb")
    assert item["html"] == str(output / "91_records.html")
    html = (output / "91_records.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "recording the answer" in html
    assert "<title>91_records</title>" in html
    assert not list(output.glob(".*.tmp"))  # the atomic writer left no temporary file


def test_failed_copy_has_banner(run):
    _, _, output, _ = run
    cells = nbformat.read(output / "92_raises.ipynb", as_version=4).cells
    banner = cells[0]
    assert reproduce.FAILURE_BANNER_TAG in banner.metadata["tags"]
    # Execution count 3: papermill's injected parameters cell ran first, then "value = 1".
    assert "This run failed: `cell 3 raised ZeroDivisionError: the failing cell`" in banner.source
    assert "(#papermill-error-cell)" in banner.source


def test_anchor_precedes_failing_cell(run):
    _, _, output, _ = run
    cells = nbformat.read(output / "92_raises.ipynb", as_version=4).cells
    failing = next(index for index, cell in enumerate(cells) if cell.source == FAILING_SOURCE)
    assert 'id="papermill-error-cell"' in cells[failing - 1].source
    assert [output.output_type for output in cells[failing].outputs] == ["error"]
    assert cells[failing + 1].outputs == []


def test_failed_html_shows_failure(run):
    _, summary, output, _ = run
    assert entry(summary, BAD)["html"] == str(output / "92_raises.html")
    html = (output / "92_raises.html").read_text()
    assert "This run failed" in html
    assert 'href="#papermill-error-cell"' in html
    assert 'id="papermill-error-cell"' in html
    assert "the failing cell" in html
    assert html.index("This run failed") < html.index('id="papermill-error-cell"') < html.index("never runs")


def test_markdown_lists_html_and_versions(run):
    _, _, output, _ = run
    table = (output / "summary.md").read_text()
    assert "| notebook | status | seconds | executed copy | HTML | note |" in table
    assert str(output / "92_raises.html") in table
    assert f"- python: {platform.python_version()}" in table
    assert "s in total." in table


def test_mark_failure_replaces_banner(tmp_path):
    path = tmp_path / "copy.ipynb"
    write_notebook(path, [new_code_cell("1 + 1")])
    reproduce.mark_failure(path, "first")
    reproduce.mark_failure(path, "second")
    cells = nbformat.read(path, as_version=4).cells
    banners = [cell.source for cell in cells if reproduce.FAILURE_BANNER_TAG in cell.metadata.get("tags", [])]
    assert len(banners) == 1
    assert banners[0].startswith("## This run failed: `second`")
    assert "papermill marked no failing cell" in banners[0]


def test_export_failure_is_reported(tmp_path, monkeypatch):
    write_notebook(tmp_path / "93_ok.ipynb", [new_code_cell("from corex_edu import results\nresults.record('93', [results.Row('93', 'x', 1.0, 'nats')], results_dir)")])
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path)
    monkeypatch.setattr(reproduce, "NOTEBOOKS", {"93": reproduce.NotebookSpec("93", "93_ok.ipynb", requires=(), metrics=(reproduce.Metric("x", "nats"),))})

    def broken_export(executed):
        raise OSError("disk full")

    monkeypatch.setattr(reproduce, "export_html", broken_export)
    lines = []
    status = reproduce.reproduce("quick", device="cpu", results_dir=tmp_path / "out", report=lines.append)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert status == 0
    assert summary["notebooks"][0]["html"] == ""
    assert any("OSError: disk full" in line for line in lines)
