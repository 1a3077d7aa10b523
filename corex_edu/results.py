"""Result rows that notebooks record and the summary files the main job writes.

Each notebook calls :func:`record` with its rows; the main job collects them into
``results/<profile>/summary.json`` and ``summary.md``. The JSON layout is a contract read by
other tools::

    {"profile": str, "device": str, "torch": str,
     "rows": [{"notebook": "01", "metric": str, "value": float, "sd": float | null, "seeds": int,
               "paper": float | null, "unit": str, "status": "ok" | "skipped", "note": str}],
     "started_at": str, "seconds": float,
     "versions": {"python": str, "platform": str, "torch": str, "numpy": str, ..., "git_commit": str | null,
                  "git_dirty": bool | null, ...},
     "notebooks": [{"notebook": "01", "status": "ok" | "skipped" | "failed", "started_at": str,
                    "seconds": float, "output": str, "html": str, "note": str}]}

``started_at`` values are ISO 8601 times in UTC. ``seconds`` is wall-clock time, and a notebook's
covers its execution but not the HTML export. ``output`` and ``html`` are the executed copy and its
static HTML, or "" when none was written. :func:`collect_versions` lists every ``versions`` key.
Everything after ``rows`` is an addition to the contract's required keys; readers that only know
``rows`` can ignore it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from corex_edu import __version__, atomic, paths
from corex_edu.errors import ConfigurationError
from corex_edu.profiles import resolve_profile

ROW_STATUSES = ("ok", "skipped")
# Distributions whose installed versions summary.json records, in this order.
RECORDED_PACKAGES = ("numpy", "scipy", "papermill", "nbformat", "ipywidgets")
GIT_TIMEOUT_S = 10


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


def display_path(path: str | os.PathLike[str]) -> str:
    """Return ``path`` relative to the repository when it lies inside it, else the absolute path.

    The notebooks print where they recorded their rows. With a relative path, the committed
    outputs do not show the folder of the checkout that made them.
    """
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(paths.REPOSITORY_DIR.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """Read rows written by :func:`record`."""
    return [Row(**entry) for entry in json.loads(Path(path).read_text())]


def collect_versions(device: torch.device | str | None = None) -> dict[str, Any]:
    """Return the software and hardware of the process that calls it, for summary.json's ``versions`` record.

    Keys:

    - ``python``, ``platform``, ``torch``, ``corex_edu``, ``cpu_count`` and ``torch_threads``.
    - One per entry of :data:`RECORDED_PACKAGES`, None when that package is not installed.
    - ``cuda_device``: the GPU's name when ``device`` is a CUDA device, else None.
    - ``git_commit`` and ``git_dirty`` from :func:`git_state`.

    The notebooks run in their own kernels, which may set another thread count.
    """
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    device = torch.device(device) if device is not None else None
    versions.update(
        corex_edu=__version__,
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        cuda_device=torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None,
    )
    versions.update(git_state())
    return versions


def git_state(repository: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Return ``{"git_commit": sha or None, "git_dirty": bool or None}`` for a checkout (default: this package's).

    ``git_dirty`` is true when ``git status --porcelain`` lists anything: modified, staged or
    untracked files that are not ignored. Both are None without a ``.git`` entry in the folder,
    without a git executable, or when git fails (for example a checkout owned by another user).
    """
    folder = Path(repository) if repository is not None else paths.REPOSITORY_DIR
    unknown = {"git_commit": None, "git_dirty": None}
    if not (folder / ".git").exists():  # a folder or, in a linked worktree, a file
        return unknown
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True)
        changes = subprocess.run(["git", "-C", str(folder), "status", "--porcelain"], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return unknown
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(changes.stdout.strip())}


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
    ]
    if "started_at" in document:
        lines += [f"Started {document['started_at']} (UTC), {document['seconds']:.1f} s in total.", ""]
    lines += [
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
        lines += ["", "| notebook | status | seconds | executed copy | HTML | note |", "|---|---|---|---|---|---|"]
        for entry in document["notebooks"]:
            note = str(entry.get("note", "")).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {entry['notebook']} | {entry['status']} | {entry['seconds']:.1f} | {entry.get('output', '')} | {entry.get('html', '')} | {note} |")
    if document.get("versions"):
        lines += ["", "Software and hardware of the main job:", ""]
        lines += [f"- {name}: {value}" for name, value in document["versions"].items()]
    return "\n".join(lines) + "\n"
