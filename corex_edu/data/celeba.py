"""CelebA "Align&Cropped" faces: layout detection, loading with a decoding cache, and help when the data is missing.

The CelebA root is ``$COREX_EDU_CELEBA`` (default ``<data root>/celeba``). :func:`detect_layout`
recognises three layouts under it:

``official``
    ``<root>/img_align_celeba/*.jpg``, ``<root>/list_attr_celeba.txt`` and
    ``<root>/list_eval_partition.txt``, as in the official download.
``torchvision``
    the official layout inside ``<root>/celeba/``, which is where
    ``torchvision.datasets.CelebA(root)`` reads and writes it.
``kaggle``
    ``<root>/img_align_celeba/img_align_celeba/*.jpg``, ``<root>/list_attr_celeba.csv`` and
    ``<root>/list_eval_partition.csv``: the Kaggle dataset ``jessicali9530/celeba-dataset`` unzipped.

Which images :func:`load` returns: the partition file fixes the split and the order. An image
listed there is used only if the attribute file lists it too and the image is on disk, so a
folder holding a subset of CelebA works with the full list files. Listed images that are absent
from disk, or absent from the attribute file, and images that fail to decode are skipped, logged and
returned in :attr:`CelebAImages.skipped` with the reason.

Preprocessing: the aligned images are 178x218 (width x height). :func:`load` cuts the central
``crop`` x ``crop`` square and resizes it to ``size`` x ``size`` with Pillow's bilinear filter.
The default crop of 148 keeps columns 15 to 162 and rows 35 to 182, so the face stays and most
of the background goes. With
``draft=False`` (the default) this equals ``CenterCrop(crop)`` followed by ``Resize(size)`` from
``torchvision.transforms`` on a PIL image, pixel for pixel.

Decoded images are cached under ``<data root>/cache/`` (see :func:`load`), so only the first load
decodes JPEGs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import PIL
import torch
from PIL import Image
from tqdm.auto import tqdm

from corex_edu import atomic, paths
from corex_edu.errors import ConfigurationError, DataIntegrityError, DataNotFoundError
from corex_edu.training import progress_enabled

logger = logging.getLogger(__name__)

LayoutName = Literal["official", "torchvision", "kaggle"]
Split = Literal["train", "val", "test", "all"]

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
ATTRIBUTE_COUNT = 40
ALIGNED_IMAGE_SIZE = (178, 218)
DEFAULT_CROP = 148
DEFAULT_SIZE = 64
MIN_SIZE = 8
CACHE_FORMAT_VERSION = 1
# Unreadable images get one warning each up to this count, then a single warning with the total.
MAX_LOGGED_UNREADABLE = 20

DATA_CHECK_COMMAND = "python -m corex_edu data check"
KAGGLE_DATASET = "jessicali9530/celeba-dataset"

# Why torchvision's download fails: Google Drive limits daily downloads of each shared file and
# then serves a "Quota exceeded" HTML page, which torchvision saves as img_align_celeba.zip.
# Reports and the maintainers' diagnosis: https://github.com/pytorch/vision/issues/2262
HOW_TO_GET_CELEBA = (
    f"Kaggle route: download the dataset {KAGGLE_DATASET} (for example `kaggle datasets download -d {KAGGLE_DATASET}`), "
    "unzip it and set COREX_EDU_CELEBA to the unzipped folder. "
    "Manual route: from the official CelebA page (MMLAB, CUHK) download the Align&Cropped images "
    "img_align_celeba.zip, Anno/list_attr_celeba.txt and Eval/list_eval_partition.txt, unzip the images "
    "next to the two text files and set COREX_EDU_CELEBA to that folder. "
    "torchvision.datasets.CelebA(download=True) fetches the same files from Google Drive but often fails with "
    "`BadZipFile` once the daily download quota of the shared files is used up, because it then saves an HTML "
    "page as img_align_celeba.zip. Use one of the two routes above instead. "
    f"Then run `{DATA_CHECK_COMMAND}`."
)


# --------------------------------------------------------------------------------------------
# Layout detection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CelebALayout:
    """Paths of one CelebA copy: its image folder and its attribute and partition files."""

    name: LayoutName
    root: Path
    image_folder: Path
    attribute_file: Path
    partition_file: Path

    @property
    def file_format(self) -> Literal["txt", "csv"]:
        """Format of the two list files: the official whitespace-separated text or Kaggle's CSV."""
        return "csv" if self.name == "kaggle" else "txt"


def candidate_layouts(root: str | Path) -> list[CelebALayout]:
    """Return the three layouts :func:`detect_layout` tries under ``root``, in the order it tries them."""
    root = Path(root)
    return [
        CelebALayout("official", root, root / "img_align_celeba", root / "list_attr_celeba.txt", root / "list_eval_partition.txt"),
        CelebALayout(
            "torchvision",
            root / "celeba",
            root / "celeba" / "img_align_celeba",
            root / "celeba" / "list_attr_celeba.txt",
            root / "celeba" / "list_eval_partition.txt",
        ),
        CelebALayout(
            "kaggle",
            root,
            root / "img_align_celeba" / "img_align_celeba",
            root / "list_attr_celeba.csv",
            root / "list_eval_partition.csv",
        ),
    ]


def detect_layout(root: str | Path | None = None) -> CelebALayout:
    """Find the CelebA copy under ``root`` (default :func:`corex_edu.paths.celeba_root`).

    A layout matches when its image folder contains at least one ``.jpg`` file and both list files
    exist. Only the folder and file names are checked here. :func:`load` and :func:`inventory`
    parse the list files.

    Raises:
        DataNotFoundError: no layout has images (the message lists every path looked at and how
            to get CelebA), or a layout has images but lacks a list file (the message names the file).
    """
    resolved_root = Path(root).expanduser() if root is not None else paths.celeba_root()
    with_images = _layouts_with_images(resolved_root)
    for layout in with_images:
        if layout.attribute_file.is_file() and layout.partition_file.is_file():
            return layout
    if with_images:
        raise DataNotFoundError(_missing_list_file_message(with_images[0]))
    raise DataNotFoundError(missing_data_message(resolved_root, _describe_root_origin(root)))


def any_layout_has_images(root: str | Path) -> bool:
    """Return whether the image folder of any of the three layouts under ``root`` contains a ``.jpg`` file."""
    return bool(_layouts_with_images(Path(root)))


def _layouts_with_images(root: Path) -> list[CelebALayout]:
    return [layout for layout in candidate_layouts(root) if _has_jpeg(layout.image_folder)]


def _has_jpeg(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(entry.name.lower().endswith(".jpg") for entry in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _describe_root_origin(root: str | Path | None) -> str:
    if root is not None:
        return "the root passed by the caller"
    if os.environ.get("COREX_EDU_CELEBA"):
        return "$COREX_EDU_CELEBA"
    return "the default <data root>/celeba"


def looked_for(root: str | Path) -> list[str]:
    """Return one line per layout naming the image folder and the two list files it needs under ``root``."""
    return [
        f"{layout.name} layout: {layout.image_folder}/*.jpg, {layout.attribute_file}, {layout.partition_file}"
        for layout in candidate_layouts(root)
    ]


def missing_data_message(root: str | Path, origin: str = "$COREX_EDU_CELEBA") -> str:
    """Return the text of the error raised when no CelebA layout exists under ``root``."""
    places = "\n".join(f"  {line}" for line in looked_for(root))
    return (
        f"CelebA not found under {root} ({origin}). Looked for:\n{places}\n"
        f"Set COREX_EDU_CELEBA to the folder that contains one of these layouts. {HOW_TO_GET_CELEBA}"
    )


def _missing_list_file_message(layout: CelebALayout) -> str:
    absent = [path for path in (layout.attribute_file, layout.partition_file) if not path.is_file()]
    names = " and ".join(str(path) for path in absent)
    if layout.name == "kaggle":
        source = f"the Kaggle dataset {KAGGLE_DATASET} contains both CSV files next to img_align_celeba/"
    else:
        source = "the official download has list_attr_celeba.txt in Anno/ and list_eval_partition.txt in Eval/"
    return (
        f"CelebA images found in {layout.image_folder} ({layout.name} layout), but {names} "
        f"{'is' if len(absent) == 1 else 'are'} missing. Copy {'it' if len(absent) == 1 else 'them'} there ({source}), then run `{DATA_CHECK_COMMAND}`."
    )


# --------------------------------------------------------------------------------------------
# Attribute and partition files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeTable:
    """The parsed attribute file: the 40 names, each image's row index, and the (n, 40) bool values (True where the file has 1)."""

    names: tuple[str, ...]
    rows: dict[str, int]
    values: np.ndarray


def read_attributes(layout: CelebALayout) -> AttributeTable:
    """Parse the layout's attribute file (official text or Kaggle CSV).

    The text format is a count line, a line with the 40 names, then one line per image:
    ``NNNNNN.jpg`` and 40 values of 1 or -1, separated by any whitespace (the official file uses
    CRLF line endings and double spaces). A file without the count line is accepted too. The CSV
    format is a header ``image_id,5_o_Clock_Shadow,...`` and one comma-separated line per image.

    Raises:
        DataNotFoundError: the file is missing.
        DataIntegrityError: the file is garbled. The message names the file, the line and the fix.
    """
    path = layout.attribute_file
    lines = _read_lines(path)
    delimiter = "," if layout.file_format == "csv" else None
    if delimiter == ",":
        header = _split_fields(lines[0][1], delimiter) if lines else []
        if not header or header[0] != "image_id":
            raise DataIntegrityError(f"{path} does not start with the CSV header 'image_id,5_o_Clock_Shadow,...'. {_refetch_hint(path)}")
        names = tuple(header[1:])
        records = lines[1:]
    else:
        first = lines[0][1].split() if lines else []
        declared = int(first[0]) if len(first) == 1 and first[0].isdigit() else None
        header_index = 1 if declared is not None else 0
        if len(lines) <= header_index:
            raise DataIntegrityError(f"{path} has no line with the attribute names. {_refetch_hint(path)}")
        names = tuple(lines[header_index][1].split())
        records = lines[header_index + 1 :]
        if declared is not None and declared != len(records):
            raise DataIntegrityError(
                f"{path} declares {declared} images on line 1 but has {len(records)} image lines, so the file is truncated or edited. "
                f"{_refetch_hint(path)}"
            )
    if len(names) != ATTRIBUTE_COUNT:
        raise DataIntegrityError(f"{path} names {len(names)} attributes in its header, expected {ATTRIBUTE_COUNT}. {_refetch_hint(path)}")

    image_names, values = _parse_attribute_rows(path, records, delimiter)
    rows: dict[str, int] = {}
    for index, name in enumerate(image_names):
        if name in rows:
            raise DataIntegrityError(f"{path} lists {name} twice (line {records[index][0]}). {_refetch_hint(path)}")
        rows[name] = index
    return AttributeTable(names, rows, values)


def _parse_attribute_rows(path: Path, records: list[tuple[int, str]], delimiter: str | None) -> tuple[list[str], np.ndarray]:
    """Return the image names and the (n, 40) bool values of the attribute lines.

    The fast path lets :func:`numpy.loadtxt` parse the values, which is several times faster than
    the line-by-line parser on the full 202,599-line file. When numpy rejects the lines, the
    line-by-line parser runs to name the first bad line in the error.
    """
    image_names: list[str] = []
    value_texts: list[str] = []
    for _, line in records:
        parts = line.split(delimiter, 1)
        image_names.append(parts[0].strip())
        value_texts.append(parts[1] if len(parts) > 1 else "")
    if not records:
        return image_names, np.empty((0, ATTRIBUTE_COUNT), dtype=bool)
    try:
        parsed = np.loadtxt(value_texts, dtype=np.int8, delimiter=delimiter, comments=None, ndmin=2)
        if parsed.shape == (len(records), ATTRIBUTE_COUNT) and bool(np.all((parsed == 1) | (parsed == -1))):
            return image_names, parsed == 1
    except ValueError:
        pass
    return image_names, _parse_attribute_rows_slowly(path, records, delimiter)


def _parse_attribute_rows_slowly(path: Path, records: list[tuple[int, str]], delimiter: str | None) -> np.ndarray:
    values = np.empty((len(records), ATTRIBUTE_COUNT), dtype=bool)
    for index, (number, line) in enumerate(records):
        tokens = _split_fields(line, delimiter)
        if len(tokens) != ATTRIBUTE_COUNT + 1:
            raise DataIntegrityError(
                f"{path} line {number} has {len(tokens)} fields, expected an image name and {ATTRIBUTE_COUNT} values. {_refetch_hint(path)}"
            )
        invalid = [value for value in tokens[1:] if value not in ("1", "-1")]
        if invalid:
            raise DataIntegrityError(f"{path} line {number} has the value {invalid[0]!r}, expected 1 or -1. {_refetch_hint(path)}")
        values[index] = [value == "1" for value in tokens[1:]]
    return values


def read_partitions(layout: CelebALayout) -> list[tuple[str, int]]:
    """Parse the layout's partition file into (image name, 0 train / 1 val / 2 test) pairs in file order.

    Raises:
        DataNotFoundError: the file is missing.
        DataIntegrityError: the file is garbled. The message names the file, the line and the fix.
    """
    path = layout.partition_file
    lines = _read_lines(path)
    delimiter = "," if layout.file_format == "csv" else None
    if delimiter == ",":
        header = _split_fields(lines[0][1], delimiter) if lines else []
        if header != ["image_id", "partition"]:
            raise DataIntegrityError(f"{path} does not start with the CSV header 'image_id,partition'. {_refetch_hint(path)}")
        lines = lines[1:]

    entries: list[tuple[str, int]] = []
    seen: set[str] = set()
    for number, line in lines:
        tokens = _split_fields(line, delimiter)
        if len(tokens) != 2 or tokens[1] not in ("0", "1", "2"):
            raise DataIntegrityError(
                f"{path} line {number} reads {line.strip()!r}, expected an image name and a partition of 0, 1 or 2. {_refetch_hint(path)}"
            )
        if tokens[0] in seen:
            raise DataIntegrityError(f"{path} lists {tokens[0]} twice (line {number}). {_refetch_hint(path)}")
        seen.add(tokens[0])
        entries.append((tokens[0], int(tokens[1])))
    if not entries:
        raise DataIntegrityError(f"{path} lists no images. {_refetch_hint(path)}")
    return entries


def _split_fields(line: str, delimiter: str | None) -> list[str]:
    """Split a line on whitespace (official text files) or on commas (Kaggle CSV files)."""
    if delimiter is None:
        return line.split()
    return [field.strip() for field in line.split(delimiter)]


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Return the non-blank lines of a text file with their 1-based line numbers."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as error:
        raise DataNotFoundError(f"{path} is missing. {_refetch_hint(path)}") from error
    except UnicodeDecodeError as error:
        raise DataIntegrityError(f"{path} is not a text file ({error}). {_refetch_hint(path)}") from error
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _refetch_hint(path: Path) -> str:
    if path.suffix == ".csv":
        return f"Download {path.name} again from the Kaggle dataset {KAGGLE_DATASET}."
    folder = "Anno/" if "attr" in path.name else "Eval/"
    return f"Download {path.name} again from the {folder} folder of the official CelebA download, or use the Kaggle copy ({KAGGLE_DATASET})."


# --------------------------------------------------------------------------------------------
# Inventory for `data check` (no decoding)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CelebAInventory:
    """Contents of one CelebA copy, counted from file names and the list files without decoding images."""

    layout: CelebALayout
    images_on_disk: int
    split_sizes: dict[str, int]
    missing_on_disk: int


def inventory(root: str | Path | None = None) -> CelebAInventory:
    """Detect the layout, parse both list files and count the usable images of each split.

    ``split_sizes`` counts the images that are listed in both files and present on disk, which are
    the images :func:`load` decodes. ``missing_on_disk`` counts images in the partition file that
    are absent from the image folder.

    Raises:
        DataNotFoundError: see :func:`detect_layout`.
        DataIntegrityError: a list file is garbled.
    """
    layout = detect_layout(root)
    on_disk = _image_names(layout.image_folder)
    attributes = read_attributes(layout)
    partitions = read_partitions(layout)
    split_sizes = dict.fromkeys(SPLIT_CODES, 0)
    split_names = {code: name for name, code in SPLIT_CODES.items()}
    missing = 0
    for name, code in partitions:
        if name not in on_disk:
            missing += 1
        elif name in attributes.rows:
            split_sizes[split_names[code]] += 1
    return CelebAInventory(layout, len(on_disk), split_sizes, missing)


def _image_names(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries if entry.name.lower().endswith(".jpg") and entry.is_file()}


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


class UnreadableImageError(Exception):
    """An image file that is empty, truncated or not an image, which :func:`load` skips."""


def decode_image(
    path: str | Path,
    size: int = DEFAULT_SIZE,
    crop: int | None = DEFAULT_CROP,
    expected_size: tuple[int, int] | None = ALIGNED_IMAGE_SIZE,
    draft: bool = False,
) -> np.ndarray:
    """Decode one image, cut the central ``crop`` x ``crop`` square and resize it to ``size`` x ``size``.

    Returns a uint8 array of shape (3, size, size). ``crop=None`` uses the largest central square.
    With ``draft=True`` libjpeg decodes at 1/2, 1/4 or 1/8 scale when the crop is at least that many
    times larger than ``size``. That is faster, and the result is deterministic for a given
    Pillow build, but it differs slightly from the full decode. Over the 6,000-image CelebA
    sample at the default size and crop, the mean absolute difference is 1.3 grey levels out of
    255 (Pillow 13.0.0).

    Raises:
        UnreadableImageError: the file is empty, truncated or not an image.
        DataIntegrityError: the image is not ``expected_size`` (width, height) or is smaller than the crop.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            _check_image_size(path, width, height, crop, expected_size)
            side = crop if crop is not None else min(width, height)
            left = int(round((width - side) / 2.0))
            top = int(round((height - side) / 2.0))
            box = (left, top, left + side, top + side)
            if draft and size < side:
                # Ask for the smallest decoded size that still keeps the crop at least `size` wide.
                requested = (math.ceil(width * size / side), math.ceil(height * size / side))
                configured = image.draft("RGB", requested)
                if configured is not None:
                    # The crop box may now fall between pixels, so it is passed to resize(), whose
                    # filter then also reads the pixels just outside the box.
                    scale = configured[1][2] / width
                    scaled_box = (box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale)
                    pixels = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, box=scaled_box)
                    return np.asarray(pixels).transpose(2, 0, 1)
            pixels = image.convert("RGB").crop(box).resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(pixels).transpose(2, 0, 1)
    except DataIntegrityError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if path.is_file() and path.stat().st_size == 0:
            raise UnreadableImageError("empty file (0 bytes)") from error
        raise UnreadableImageError(f"{type(error).__name__}: {error}") from error


def _check_image_size(path: Path, width: int, height: int, crop: int | None, expected_size: tuple[int, int] | None) -> None:
    if expected_size is not None and (width, height) != tuple(expected_size):
        raise DataIntegrityError(
            f"{path} is {width}x{height} pixels, expected {expected_size[0]}x{expected_size[1]} (width x height) for the "
            "aligned-and-cropped img_align_celeba images. Replace the folder with the Align&Cropped set, or pass "
            "expected_size=None to accept other sizes."
        )
    if crop is not None and crop > min(width, height):
        raise DataIntegrityError(f"{path} is {width}x{height} pixels, smaller than the {crop}x{crop} crop. Pass a crop of at most {min(width, height)}.")


# --------------------------------------------------------------------------------------------
# Loading and caching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedImage:
    """An image of the requested split that :func:`load` did not return, and why."""

    file_name: str
    reason: str


@dataclass(frozen=True, eq=False)
class CelebAImages:
    """Images of one CelebA split with their attributes.

    ``images`` has shape (N, 3, H, W), uint8 in 0..255 or floating point in [0, 1] (pixel / 255).
    ``attributes`` is a bool tensor of shape (N, 40), True where the attribute file has 1, in the
    column order of ``attribute_names``. ``partitions`` contains 0 (train), 1 (val) or 2 (test) per image.
    """

    images: torch.Tensor
    attributes: torch.Tensor
    attribute_names: tuple[str, ...]
    file_names: tuple[str, ...]
    partitions: torch.Tensor
    skipped: tuple[SkippedImage, ...]
    layout: CelebALayout
    split: str
    from_cache: bool = False
    cache_file: Path | None = field(default=None)

    def __len__(self) -> int:
        return self.images.shape[0]

    def attribute(self, name: str) -> torch.Tensor:
        """Return the bool column of attribute ``name`` (for example ``"Smiling"``)."""
        if name not in self.attribute_names:
            raise ConfigurationError(f"unknown CelebA attribute {name!r}. Available attributes: {', '.join(self.attribute_names)}")
        return self.attributes[:, self.attribute_names.index(name)]


@dataclass(frozen=True)
class _Decoded:
    """The uint8 payload that the cache stores."""

    images: torch.Tensor
    attributes: torch.Tensor
    attribute_names: tuple[str, ...]
    file_names: tuple[str, ...]
    partitions: torch.Tensor
    skipped: tuple[SkippedImage, ...]
    examined: tuple[str, ...]
    images_digest: str


def load(
    split: Split = "train",
    root: str | Path | None = None,
    size: int = DEFAULT_SIZE,
    crop: int | None = DEFAULT_CROP,
    limit: int | None = None,
    dtype: torch.dtype = torch.uint8,
    expected_size: tuple[int, int] | None = ALIGNED_IMAGE_SIZE,
    draft: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
) -> CelebAImages:
    """Load one split of CelebA as tensors, decoding JPEGs only when no valid cache exists.

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` (partition 0, 1, 2 of the official partition file) or ``"all"``.
        root: the CelebA root in any of the three layouts (default :func:`corex_edu.paths.celeba_root`).
        size: output side length in pixels, at least 8. The crop is resized to ``size`` x ``size``.
        crop: side of the central square cut before resizing, in pixels of the original image.
            ``None`` uses the largest central square (178 for the aligned images).
        limit: return only the first ``limit`` images of the split that decode, in partition-file order.
        dtype: ``torch.uint8`` (0..255) or a floating dtype, which gives pixel / 255 in [0, 1].
        expected_size: (width, height) that every image must have, or ``None`` to accept any size.
        draft: let libjpeg decode at a reduced scale first, which is faster but changes pixels slightly (see :func:`decode_image`).
        cache: read and write the decoded uint8 tensors under ``cache_dir``.
        cache_dir: default ``<data root>/cache``.
        progress: show a progress bar while decoding (default: unless ``$COREX_EDU_PROGRESS=0``).

    Images listed in the partition file but absent from disk are skipped with the reason
    ``"missing"``, and images that the attribute file does not list with ``"not in the attribute
    file"``. Images that fail to decode are skipped with the decoder's error as the reason. All are
    logged and returned in ``skipped``, in partition-file order. With ``limit``, ``skipped`` covers
    the entries up to the last image returned.

    The cache file name encodes the layout, split, size, crop and limit and a hash of the image
    folder's path, ``expected_size``, ``draft`` and the Pillow version. The file also stores the size
    and modification time of both list files and the modification time of the image folder, which
    changes when images are added or removed. It also stores a digest of the size and modification
    time of every image that was read. A cache whose stored values differ from the files on disk is
    rebuilt. Cache files are written atomically, so an interrupted run never leaves a partial one.

    Raises:
        ConfigurationError: an invalid split, size, crop, limit or dtype.
        DataNotFoundError: CelebA or one of its list files is missing (see :func:`detect_layout`).
        DataIntegrityError: a list file is garbled or an image has the wrong size.
    """
    _check_arguments(split, size, crop, limit, dtype, expected_size)
    layout = detect_layout(root)
    cache_path = _cache_path(layout, split, size, crop, limit, expected_size, draft, cache_dir) if cache else None

    decoded = _read_cache(cache_path, layout) if cache_path is not None else None
    from_cache = decoded is not None
    if decoded is None:
        # Taken before the list files are read, so a change during decoding makes the cache stale.
        lists = _list_fingerprint(layout)
        decoded = _decode_split(layout, split, size, crop, limit, expected_size, draft, progress)
        if cache_path is not None:
            _write_cache(cache_path, lists, decoded)
    else:
        _log_skipped_summary(decoded.skipped, layout, split, from_cache=True)

    images = decoded.images if dtype == torch.uint8 else decoded.images.to(dtype).div_(255.0)
    return CelebAImages(
        images=images,
        attributes=decoded.attributes,
        attribute_names=decoded.attribute_names,
        file_names=decoded.file_names,
        partitions=decoded.partitions,
        skipped=decoded.skipped,
        layout=layout,
        split=split,
        from_cache=from_cache,
        cache_file=cache_path,
    )


def _check_arguments(
    split: str, size: int, crop: int | None, limit: int | None, dtype: torch.dtype, expected_size: tuple[int, int] | None
) -> None:
    if split not in (*SPLIT_CODES, "all"):
        raise ConfigurationError(f"unknown CelebA split {split!r}. Choose 'train', 'val', 'test' or 'all'.")
    if not isinstance(size, int) or size < MIN_SIZE:
        raise ConfigurationError(f"size must be an integer of at least {MIN_SIZE} pixels, got {size!r}")
    if crop is not None and (not isinstance(crop, int) or crop < 1):
        raise ConfigurationError(f"crop must be a positive integer number of pixels or None, got {crop!r}")
    if crop is not None and expected_size is not None and crop > min(expected_size):
        raise ConfigurationError(f"crop {crop} is larger than the {expected_size[0]}x{expected_size[1]} images. Use at most {min(expected_size)}.")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigurationError(f"limit must be a positive integer or None, got {limit!r}")
    if dtype != torch.uint8 and not dtype.is_floating_point:
        raise ConfigurationError(f"dtype must be torch.uint8 or a floating dtype such as torch.float32, got {dtype}")


def _decode_split(
    layout: CelebALayout,
    split: str,
    size: int,
    crop: int | None,
    limit: int | None,
    expected_size: tuple[int, int] | None,
    draft: bool,
    progress: bool | None,
) -> _Decoded:
    attributes = read_attributes(layout)
    entries = [(name, code) for name, code in read_partitions(layout) if split == "all" or code == SPLIT_CODES[split]]
    on_disk = _image_names(layout.image_folder)
    capacity = sum(1 for name, _ in entries if name in on_disk and name in attributes.rows)
    if limit is not None:
        capacity = min(capacity, limit)

    images = np.empty((capacity, 3, size, size), dtype=np.uint8)
    kept_names: list[str] = []
    kept_rows: list[int] = []
    kept_codes: list[int] = []
    skipped: list[SkippedImage] = []
    examined: list[str] = []
    images_digest = hashlib.sha256()
    unreadable = 0
    with tqdm(total=capacity, desc=f"decoding CelebA {split}", unit="img", disable=not progress_enabled(progress)) as bar:
        for name, code in entries:
            if limit is not None and len(kept_names) == limit:
                break
            if name not in on_disk:
                skipped.append(SkippedImage(name, "missing"))
                continue
            if name not in attributes.rows:
                skipped.append(SkippedImage(name, "not in the attribute file"))
                continue
            examined.append(name)
            _update_images_digest(images_digest, layout.image_folder, name)
            try:
                pixels = decode_image(layout.image_folder / name, size, crop, expected_size, draft)
            except UnreadableImageError as error:
                skipped.append(SkippedImage(name, str(error)))
                unreadable += 1
                if unreadable <= MAX_LOGGED_UNREADABLE:
                    logger.warning("skipped unreadable CelebA image %s: %s", layout.image_folder / name, error)
                continue
            images[len(kept_names)] = pixels
            kept_names.append(name)
            kept_rows.append(attributes.rows[name])
            kept_codes.append(code)
            bar.update(1)

    _log_skipped_summary(skipped, layout, split, from_cache=False)
    count = len(kept_names)
    if count == 0:
        raise DataNotFoundError(
            f"no image of split {split!r} could be loaded from {layout.image_folder}: {len(entries)} are listed in "
            f"{layout.partition_file.name} and {len(skipped)} were skipped (first: {skipped[0].file_name if skipped else 'none'}, "
            f"{skipped[0].reason if skipped else 'the split is empty'}). Copy the images of this split into the folder, or load another split."
        )
    return _Decoded(
        images=torch.from_numpy(images[:count].copy() if count < capacity else images),
        attributes=torch.from_numpy(attributes.values[kept_rows]) if kept_rows else torch.zeros((0, ATTRIBUTE_COUNT), dtype=torch.bool),
        attribute_names=attributes.names,
        file_names=tuple(kept_names),
        partitions=torch.tensor(kept_codes, dtype=torch.int64),
        skipped=tuple(skipped),
        examined=tuple(examined),
        images_digest=images_digest.hexdigest(),
    )


def _log_skipped_summary(skipped: Sequence[SkippedImage], layout: CelebALayout, split: str, from_cache: bool) -> None:
    """Log one line per kind of skip: missing, not in the attribute file, unreadable (counted)."""
    missing = [item.file_name for item in skipped if item.reason == "missing"]
    unlisted = [item.file_name for item in skipped if item.reason == "not in the attribute file"]
    unreadable = len(skipped) - len(missing) - len(unlisted)
    source = " (from the cache)" if from_cache else ""
    if missing:
        logger.warning(
            "%d images of split %r listed in %s are missing from %s and were skipped%s, for example %s",
            len(missing),
            split,
            layout.partition_file.name,
            layout.image_folder,
            source,
            ", ".join(missing[:3]),
        )
    if unlisted:
        logger.warning(
            "%d images of split %r are not in %s and were skipped%s, for example %s",
            len(unlisted),
            split,
            layout.attribute_file,
            source,
            ", ".join(unlisted[:3]),
        )
    if unreadable and (from_cache or unreadable > MAX_LOGGED_UNREADABLE):
        logger.warning("%d unreadable images of split %r were skipped%s. CelebAImages.skipped lists the reasons.", unreadable, split, source)


def _cache_path(
    layout: CelebALayout,
    split: str,
    size: int,
    crop: int | None,
    limit: int | None,
    expected_size: tuple[int, int] | None,
    draft: bool,
    cache_dir: str | Path | None,
) -> Path:
    settings = {
        "format": CACHE_FORMAT_VERSION,
        "image_folder": str(layout.image_folder.resolve()),
        "expected_size": list(expected_size) if expected_size is not None else None,
        "draft": draft,
        "pillow": PIL.__version__,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    folder = Path(cache_dir) if cache_dir is not None else paths.data_root() / "cache"
    crop_label = f"crop{crop}" if crop is not None else "cropmax"
    limit_label = f"first{limit}" if limit is not None else "nolimit"
    return folder / f"celeba-{layout.name}-{split}-{size}px-{crop_label}-{limit_label}-{digest}.pt"


def _stat_key(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def _list_fingerprint(layout: CelebALayout) -> dict[str, list[int]]:
    return {
        "attribute_file": _stat_key(layout.attribute_file),
        "partition_file": _stat_key(layout.partition_file),
        "image_folder_mtime_ns": [layout.image_folder.stat().st_mtime_ns],
    }


def _update_images_digest(digest: Any, folder: Path, name: str) -> None:
    size, mtime = _stat_key(folder / name)
    digest.update(f"{name}:{size}:{mtime};".encode("utf-8"))


def _images_digest(folder: Path, names: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        _update_images_digest(digest, folder, name)
    return digest.hexdigest()


def _read_cache(cache_path: Path, layout: CelebALayout) -> _Decoded | None:
    """Return the cached payload, or None when the file is absent, unreadable or stale."""
    if not cache_path.is_file():
        return None
    try:
        stored = torch.load(cache_path, weights_only=True)
        if stored.get("format") != CACHE_FORMAT_VERSION:
            logger.info("CelebA cache %s was written by another version of corex_edu, so the images are decoded again", cache_path.name)
            return None
        if stored["lists"] != _list_fingerprint(layout):
            logger.info("CelebA cache %s is stale because a list file or the image folder changed, so the images are decoded again", cache_path.name)
            return None
        if stored["images_digest"] != _images_digest(layout.image_folder, stored["examined"]):
            logger.info("CelebA cache %s is stale because an image changed, so the images are decoded again", cache_path.name)
            return None
        return _Decoded(
            images=stored["images"],
            attributes=stored["attributes"],
            attribute_names=tuple(stored["attribute_names"]),
            file_names=tuple(stored["file_names"]),
            partitions=stored["partitions"],
            skipped=tuple(SkippedImage(name, reason) for name, reason in stored["skipped"]),
            examined=tuple(stored["examined"]),
            images_digest=stored["images_digest"],
        )
    except FileNotFoundError:
        logger.info("CelebA cache %s is stale because an image it used is missing, so the images are decoded again", cache_path.name)
        return None
    except (OSError, RuntimeError, KeyError, AttributeError, TypeError, ValueError, EOFError) as error:
        logger.warning("CelebA cache %s is unreadable (%s: %s), so the images are decoded again", cache_path, type(error).__name__, error)
        return None


def _write_cache(cache_path: Path, lists: dict[str, list[int]], decoded: _Decoded) -> None:
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "lists": lists,
        "images_digest": decoded.images_digest,
        "examined": list(decoded.examined),
        "images": decoded.images,
        "attributes": decoded.attributes,
        "attribute_names": list(decoded.attribute_names),
        "file_names": list(decoded.file_names),
        "partitions": decoded.partitions,
        "skipped": [[item.file_name, item.reason] for item in decoded.skipped],
    }
    try:
        atomic.torch_save(payload, cache_path)
    except OSError as error:
        logger.warning("failed to write the CelebA cache %s (%s), so the next load decodes the images again", cache_path, error)
