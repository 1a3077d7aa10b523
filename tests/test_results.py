import json

import pytest

from corex_edu import results
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
