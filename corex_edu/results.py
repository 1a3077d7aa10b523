"""Result rows that notebooks record and the summary files the main job writes.

Each notebook calls :func:`record` with its rows; the main job collects them into
``results/<profile>/summary.json`` and ``summary.md``. The JSON layout is a contract read by
other tools::

    {"profile": str, "device": str, "torch": str,
     "rows": [{"notebook": "01", "metric": str, "value": float, "sd": float | null, "seeds": int,
               "paper": float | null, "unit": str, "status": "ok" | "skipped", "note": str}],
     "notebooks": [{"notebook": "01", "status": "ok" | "skipped" | "failed", "seconds": float,
                    "output": str, "note": str}]}

The ``notebooks`` list is an addition to the contract's required keys; readers that only know
``rows`` can ignore it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from corex_edu import atomic, paths
from corex_edu.errors import ConfigurationError
from corex_edu.profiles import resolve_profile

ROW_STATUSES = ("ok", "skipped")


@dataclass(frozen=True)
class Row:
    """One measured quantity; ``value`` is in ``unit`` (information is always in nats)."""

    notebook: str
    metric: str
    value: float | None
    unit: str
    sd: float | None = None
    seeds: int = 1
    paper: float | None = None
    status: str = "ok"
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in ROW_STATUSES:
            raise ConfigurationError(f"row status must be one of {ROW_STATUSES}, got {self.status!r}")
        if self.status == "ok" and (self.value is None or not math.isfinite(self.value)):
            raise ConfigurationError(f"{self.notebook}/{self.metric}: an 'ok' row needs a finite value, got {self.value!r}")
        if self.seeds < 0:
            raise ConfigurationError(f"{self.notebook}/{self.metric}: seeds must be >= 0, got {self.seeds}")

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        for key in ("value", "sd", "paper"):
            if document[key] is not None:
                document[key] = float(document[key])
        return {key: document[key] for key in ("notebook", "metric", "value", "sd", "seeds", "paper", "unit", "status", "note")}


def metrics_path(results_dir: str | os.PathLike[str], notebook: str) -> Path:
    return Path(results_dir) / "metrics" / f"{notebook}.json"


def default_results_dir(profile: str | None = None) -> Path:
    """Return ``<results root>/<profile>``."""
    return paths.results_root() / resolve_profile(profile)


def record(notebook: str, rows: Iterable[Row], results_dir: str | os.PathLike[str] | None = None, profile: str | None = None) -> Path:
    """Write a notebook's rows to ``<results_dir>/metrics/<notebook>.json`` atomically and return the path."""
    rows = list(rows)
    for row in rows:
        if row.notebook != notebook:
            raise ConfigurationError(f"row {row.metric} belongs to notebook {row.notebook}, not {notebook}")
    directory = Path(results_dir) if results_dir is not None else default_results_dir(profile)
    path = metrics_path(directory, notebook)
    atomic.write_json(path, [row.to_json() for row in rows])
    return path


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """Read rows written by :func:`record`."""
    return [Row(**entry) for entry in json.loads(Path(path).read_text())]


def write_summary(results_dir: str | os.PathLike[str], header: Mapping[str, Any], rows: list[Row], notebooks: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` atomically and return their paths."""
    directory = Path(results_dir)
    document = {**header, "rows": [row.to_json() for row in rows], "notebooks": notebooks}
    json_path, markdown_path = directory / "summary.json", directory / "summary.md"
    atomic.write_json(json_path, document)
    atomic.write_text(markdown_path, render_markdown(document))
    return json_path, markdown_path


def _format(value: float | None) -> str:
    if value is None:
        return "–"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e5):
        return f"{value:.3g}"
    return f"{value:.4g}"


def render_markdown(document: Mapping[str, Any]) -> str:
    """Render the summary as a Markdown table of our values beside those reported by Gao et al. (AISTATS 2019)."""
    lines = [
        f"# corex_edu results: profile `{document['profile']}`",
        "",
        f"Device `{document['device']}`, PyTorch {document['torch']}. Information is in nats.",
        "",
        "| notebook | metric | ours | sd | seeds | paper | unit | status | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        note = str(row["note"]).replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {row['notebook']} | `{row['metric']}` | {_format(row['value'])} | {_format(row['sd'])} | {row['seeds']} | "
            f"{_format(row['paper'])} | {row['unit']} | {row['status']} | {note} |"
        )
    if document.get("notebooks"):
        lines += ["", "| notebook | status | seconds | executed copy | note |", "|---|---|---|---|---|"]
        for entry in document["notebooks"]:
            note = str(entry.get("note", "")).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {entry['notebook']} | {entry['status']} | {entry['seconds']:.1f} | {entry.get('output', '')} | {note} |")
    return "\n".join(lines) + "\n"
