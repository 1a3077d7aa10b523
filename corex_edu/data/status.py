"""The report behind ``python -m corex_edu data check``: what is present, what is missing, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

from corex_edu import paths
from corex_edu.data import celeba, mnist
from corex_edu.errors import DataIntegrityError, DataNotFoundError


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
    """Return CelebA's layout, image count and split sizes, found from file names and the list files without decoding images."""
    root = paths.celeba_root()
    try:
        found = celeba.inventory(root)
    except DataNotFoundError as error:
        if celeba.any_layout_has_images(root):
            return DatasetStatus("celeba", False, str(root), str(error), celeba.HOW_TO_GET_CELEBA)
        looked = "; ".join(celeba.looked_for(root))
        return DatasetStatus("celeba", False, str(root), f"no CelebA layout found (looked for {looked})", celeba.HOW_TO_GET_CELEBA)
    except DataIntegrityError as error:
        return DatasetStatus("celeba", False, str(root), str(error), celeba.HOW_TO_GET_CELEBA)
    sizes = ", ".join(f"{name} {count:,}" for name, count in found.split_sizes.items())
    detail = f"{found.layout.name} layout, {found.images_on_disk:,} images in {found.layout.image_folder}; usable per split: {sizes}"
    if found.missing_on_disk:
        detail += f"; {found.missing_on_disk:,} images listed in {found.layout.partition_file.name} are not on disk and are skipped"
    return DatasetStatus("celeba", True, str(found.layout.root), detail)


def report() -> list[DatasetStatus]:
    """Return the status of every data set the notebooks use."""
    return [mnist_status(), celeba_status()]
