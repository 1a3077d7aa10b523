import json

import pytest

from corex_edu import paths, results
from corex_edu.errors import ConfigurationError


def test_summary_follows_the_contract(tmp_path):
    rows = [
        results.Row("01", "tc_bound_gap_nats", 0.01, "nats"),
        results.Row("03", "unsupervised_accuracy", 0.86, "fraction", sd=0.01, seeds=5, paper=0.85),
        results.Row("04", "images_used", None, "images", seeds=0, status="skipped", note="CelebA missing"),
    ]
    json_path, markdown_path = results.write_summary(tmp_path, {"profile": "quick", "device": "cpu", "torch": "2.x"}, rows, [])
    document = json.loads(json_path.read_text())
    assert set(document) >= {"profile", "device", "torch", "rows"}
    assert list(document["rows"][1]) == ["notebook", "metric", "value", "sd", "seeds", "paper", "unit", "status", "note"]
    assert document["rows"][1]["paper"] == 0.85
    assert document["rows"][2]["value"] is None
    table = markdown_path.read_text()
    assert "| 03 | `unsupervised_accuracy` | 0.86 | 0.01 | 5 | 0.85 | fraction | ok |" in table
    assert "nats" in table


def test_record_and_read_round_trip(tmp_path):
    row = results.Row("02", "tc_lower_bound_binarized_mnist_nats", 120.5, "nats", sd=0.3)
    path = results.record("02", [row], tmp_path)
    assert path == tmp_path / "metrics" / "02.json"
    assert results.read_rows(path) == [row]


def test_row_validation():
    with pytest.raises(ConfigurationError, match="finite value"):
        results.Row("01", "x", float("nan"), "nats")
    with pytest.raises(ConfigurationError, match="status"):
        results.Row("01", "x", 1.0, "nats", status="done")
    with pytest.raises(ConfigurationError, match="belongs to notebook"):
        results.record("02", [results.Row("01", "x", 1.0, "nats")], "/tmp")


def test_versions_on_cpu():
    import os
    import platform

    import numpy
    import torch

    versions = results.collect_versions("cpu")
    assert versions["python"] == platform.python_version()
    assert versions["numpy"] == numpy.__version__
    assert versions["torch"] == torch.__version__
    assert versions["cpu_count"] == os.cpu_count()
    assert versions["torch_threads"] == torch.get_num_threads()
    assert versions["cuda_device"] is None


def test_git_state_outside_checkout(tmp_path):
    assert results.git_state(tmp_path) == {"git_commit": None, "git_dirty": None}


def test_git_state_clean_then_dirty(tmp_path):
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    identity = ["-c", "user.name=corex_edu test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), *identity, "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert results.git_state(tmp_path) == {"git_commit": head, "git_dirty": False}
    (tmp_path / "b.txt").write_text("untracked\n")
    assert results.git_state(tmp_path)["git_dirty"] is True


def test_markdown_lists_versions(tmp_path):
    header = {"profile": "quick", "device": "cpu", "torch": "2.x", "started_at": "2026-01-01T00:00:00+00:00", "seconds": 12.34, "versions": {"python": "3.11.7", "git_dirty": False}}
    _, markdown_path = results.write_summary(tmp_path, header, [], [])
    table = markdown_path.read_text()
    assert "Started 2026-01-01T00:00:00+00:00 (UTC), 12.3 s in total." in table
    assert "- python: 3.11.7" in table
    assert "- git_dirty: False" in table


def test_display_path_inside_and_outside_repository(tmp_path):
    inside = paths.REPOSITORY_DIR / "results" / "standard" / "metrics" / "03.json"
    assert results.display_path(inside) == "results/standard/metrics/03.json"
    assert results.display_path(tmp_path / "03.json") == str((tmp_path / "03.json").resolve())
