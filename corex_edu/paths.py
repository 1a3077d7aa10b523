"""Locations of the data, results and notebooks folders.

The data root comes from ``COREX_EDU_DATA`` (default ``<repository>/data``) and the CelebA
root from ``COREX_EDU_CELEBA`` (default ``<data root>/celeba``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPOSITORY_DIR = PACKAGE_DIR.parent
NOTEBOOKS_DIR = REPOSITORY_DIR / "notebooks"


def data_root() -> Path:
    """Return the data folder: ``$COREX_EDU_DATA`` if set, else ``<repository>/data``."""
    configured = os.environ.get("COREX_EDU_DATA")
    return Path(configured).expanduser() if configured else REPOSITORY_DIR / "data"


def celeba_root() -> Path:
    """Return the CelebA folder: ``$COREX_EDU_CELEBA`` if set, else ``<data root>/celeba``."""
    configured = os.environ.get("COREX_EDU_CELEBA")
    return Path(configured).expanduser() if configured else data_root() / "celeba"


def results_root() -> Path:
    """Return the folder the main job writes to: ``$COREX_EDU_RESULTS`` or ``<repository>/results``."""
    configured = os.environ.get("COREX_EDU_RESULTS")
    return Path(configured).expanduser() if configured else REPOSITORY_DIR / "results"
