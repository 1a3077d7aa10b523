"""The report behind ``python -m corex_edu data check``: what is present, what is missing, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

from corex_edu import paths
from corex_edu.data import mnist
from corex_edu.errors import DataIntegrityError, DataNotFoundError

CELEBA_REQUIRED = ("list_attr_celeba.txt", "list_eval_partition.txt")


@dataclass(frozen=True)
class DatasetStatus:
    """Whether one data set is ready, where it was looked for, and the fix when it is not."""

    name: str
    ready: bool
    location: str
    detail: str
    fix: str = ""


def mnist_status(verify_checksums: bool = True) -> DatasetStatus:
    """Return MNIST's status; with ``verify_checksums`` the SHA-256 of every file is checked (about 0.3 s)."""
    folder = mnist.raw_folder()
    try:
        if verify_checksums:
            mnist.verify()
        elif mnist.missing_files():
            raise DataNotFoundError(f"missing {', '.join(mnist.missing_files())}")
    except (DataNotFoundError, DataIntegrityError) as error:
        return DatasetStatus("mnist", False, str(folder), str(error), f"run `{mnist.FETCH_COMMAND}`")
    return DatasetStatus("mnist", True, str(folder), "60,000 training and 10,000 test images" + (", checksums verified" if verify_checksums else ""))


def celeba_status() -> DatasetStatus:
    """Return whether a CelebA folder with images and the attribute and partition files is present."""
    root = paths.celeba_root()
    fix = (
        "download CelebA yourself (the Kaggle copy 'jessicali9530/celeba-dataset' or the official "
        "Google Drive folder) and set COREX_EDU_CELEBA to the folder that holds img_align_celeba/ "
        "and the list_*.txt or list_*.csv files"
    )
    if not root.is_dir():
        return DatasetStatus("celeba", False, str(root), "folder not found", fix)
    candidates = [root, root / "celeba"]
    for folder in candidates:
        images = folder / "img_align_celeba"
        has_lists = all((folder / name).is_file() or (folder / name.replace(".txt", ".csv")).is_file() for name in CELEBA_REQUIRED)
        if images.is_dir() and has_lists:
            return DatasetStatus("celeba", True, str(folder), "images and attribute/partition files present (read by notebooks 04-05)")
    return DatasetStatus("celeba", False, str(root), "img_align_celeba/ or the attribute/partition files are missing", fix)


def report() -> list[DatasetStatus]:
    """Return the status of every data set the notebooks use."""
    return [mnist_status(), celeba_status()]
