"""Tests of corex_edu.data.celeba on tiny CelebA folders built in tmp_path, and on the real sample when present.

The fixtures copy 12 JPEGs from the CelebA sample found through ``$COREX_EDU_CELEBA`` (or the
default ``<data root>/celeba``). Without the sample they use 178x218 noise JPEGs written by
Pillow instead, and the tests that need real faces are skipped.
"""

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from corex_edu import paths
from corex_edu.data import celeba, status
from corex_edu.errors import ConfigurationError, DataIntegrityError, DataNotFoundError

ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
    "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks "
    "Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
# Partition of the 12 fixture images in file order: 6 train, 3 val, 3 test.
PARTITIONS = [0, 0, 1, 0, 2, 0, 1, 0, 2, 0, 1, 2]
FIXTURE_SIZE = len(PARTITIONS)


def find_sample() -> Path | None:
    """Return the root of a real CelebA copy from $COREX_EDU_CELEBA or the default location, or None."""
    try:
        return celeba.detect_layout(paths.celeba_root()).root
    except DataNotFoundError:
        return None


@pytest.fixture(scope="session")
def sample_root():
    root = find_sample()
    if root is None:
        pytest.skip(f"no CelebA copy at {paths.celeba_root()}; set COREX_EDU_CELEBA to the sample folder (the CI script does)")
    return root


@pytest.fixture(scope="session")
def source_jpegs(tmp_path_factory):
    """Return 12 (file name, JPEG bytes) pairs: real sample images when available, else noise images."""
    root = find_sample()
    if root is not None:
        folder = celeba.detect_layout(root).image_folder
        names = sorted(name for name in os.listdir(folder) if name.endswith(".jpg"))[:FIXTURE_SIZE]
        return [(name, (folder / name).read_bytes()) for name in names]
    scratch = tmp_path_factory.mktemp("noise")
    generator = np.random.default_rng(0)
    pairs = []
    for index in range(FIXTURE_SIZE):
        path = scratch / f"{index + 1:06d}.jpg"
        Image.fromarray(generator.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(path, quality=90)
        pairs.append((path.name, path.read_bytes()))
    return pairs


def attribute_values(index: int) -> list[int]:
    """Deterministic 1/-1 values for fixture image ``index``, different for every image."""
    return [1 if (index * 7 + column) % 3 == 0 else -1 for column in range(len(ATTRIBUTE_NAMES))]


def write_official_lists(folder: Path, names: list[str]) -> None:
    """Write both list files in the official byte format: CRLF, a count line, two-character values."""
    attribute_lines = [str(len(names)), " ".join(ATTRIBUTE_NAMES) + " "]
    for index, name in enumerate(names):
        attribute_lines.append(name + " " + " ".join(f"{value:2d}" for value in attribute_values(index)))
    (folder / "list_attr_celeba.txt").write_bytes(("\r\n".join(attribute_lines) + "\r\n").encode())
    partition_lines = [f"{name} {code}" for name, code in zip(names, PARTITIONS)]
    (folder / "list_eval_partition.txt").write_bytes(("\r\n".join(partition_lines) + "\r\n").encode())


def write_kaggle_lists(folder: Path, names: list[str]) -> None:
    """Write both list files as the Kaggle dataset's CSV files."""
    attribute_lines = ["image_id," + ",".join(ATTRIBUTE_NAMES)]
    for index, name in enumerate(names):
        attribute_lines.append(name + "," + ",".join(str(value) for value in attribute_values(index)))
    (folder / "list_attr_celeba.csv").write_text("\n".join(attribute_lines) + "\n")
    partition_lines = ["image_id,partition"] + [f"{name},{code}" for name, code in zip(names, PARTITIONS)]
    (folder / "list_eval_partition.csv").write_text("\n".join(partition_lines) + "\n")


def build_layout(root: Path, layout: str, source_jpegs) -> Path:
    """Create a CelebA folder of the given layout under ``root`` and return ``root``."""
    names = [name for name, _ in source_jpegs]
    lists_folder = root / "celeba" if layout == "torchvision" else root
    if layout == "kaggle":
        image_folder = root / "img_align_celeba" / "img_align_celeba"
    else:
        image_folder = lists_folder / "img_align_celeba"
    image_folder.mkdir(parents=True)
    for name, payload in source_jpegs:
        (image_folder / name).write_bytes(payload)
    if layout == "kaggle":
        write_kaggle_lists(root, names)
    else:
        write_official_lists(lists_folder, names)
    return root


@pytest.fixture
def official_root(tmp_path, source_jpegs):
    return build_layout(tmp_path / "celeba", "official", source_jpegs)


def load_uncached(root, **options):
    return celeba.load(root=root, cache=False, progress=False, **options)


def test_official_layout_shapes(official_root, source_jpegs):
    data = load_uncached(official_root, split="all")
    assert data.layout.name == "official"
    assert data.images.shape == (FIXTURE_SIZE, 3, 64, 64)
    assert data.images.dtype == torch.uint8
    assert data.attributes.shape == (FIXTURE_SIZE, 40)
    assert data.attributes.dtype == torch.bool
    assert data.attribute_names == tuple(ATTRIBUTE_NAMES)
    assert list(data.file_names) == [name for name, _ in source_jpegs]
    assert data.partitions.tolist() == PARTITIONS
    assert data.skipped == ()


def test_float_output_is_pixels_over_255(official_root):
    as_bytes = load_uncached(official_root, split="val")
    as_float = load_uncached(official_root, split="val", dtype=torch.float32)
    assert as_float.images.dtype == torch.float32
    assert torch.equal(as_float.images, as_bytes.images.float() / 255.0)
    assert float(as_float.images.min()) >= 0.0
    assert float(as_float.images.max()) <= 1.0


@pytest.mark.parametrize("layout", ["torchvision", "kaggle"])
def test_other_layouts_match_official(layout, tmp_path, official_root, source_jpegs):
    root = build_layout(tmp_path / layout, layout, source_jpegs)
    data = load_uncached(root, split="all")
    reference = load_uncached(official_root, split="all")
    assert celeba.detect_layout(root).name == layout
    assert data.layout.name == layout
    assert data.file_names == reference.file_names
    assert torch.equal(data.images, reference.images)
    assert torch.equal(data.attributes, reference.attributes)
    assert data.attribute_names == reference.attribute_names
    assert torch.equal(data.partitions, reference.partitions)


def test_partition_counts(official_root):
    expected = {"train": PARTITIONS.count(0), "val": PARTITIONS.count(1), "test": PARTITIONS.count(2)}
    for split, count in expected.items():
        data = load_uncached(official_root, split=split)
        assert len(data) == count, split
        assert set(data.partitions.tolist()) == {celeba.SPLIT_CODES[split]}, split
    assert celeba.inventory(official_root).split_sizes == expected


def test_attributes_parsed_from_crlf(official_root):
    raw = (official_root / "list_attr_celeba.txt").read_bytes()
    assert b"\r\n" in raw
    assert b"  1" in raw
    data = load_uncached(official_root, split="all")
    for index in range(FIXTURE_SIZE):
        expected = torch.tensor([value == 1 for value in attribute_values(index)])
        assert torch.equal(data.attributes[index], expected), data.file_names[index]
    assert torch.equal(data.attribute("Young"), data.attributes[:, 39])


def test_attribute_file_without_count_line(official_root):
    path = official_root / "list_attr_celeba.txt"
    path.write_bytes(path.read_bytes().split(b"\r\n", 1)[1])
    table = celeba.read_attributes(celeba.detect_layout(official_root))
    assert len(table.rows) == FIXTURE_SIZE
    assert table.names == tuple(ATTRIBUTE_NAMES)


def test_crop_and_resize_sizes(official_root):
    for size, crop in [(32, 100), (8, 148), (96, None), (200, 178)]:
        data = load_uncached(official_root, split="test", size=size, crop=crop)
        assert data.images.shape == (3, 3, size, size), (size, crop)
    with pytest.raises(ConfigurationError, match="at least 8"):
        load_uncached(official_root, size=7)
    with pytest.raises(ConfigurationError, match="at most 178"):
        load_uncached(official_root, crop=200)


def test_matches_torchvision_transforms(official_root):
    from torchvision import transforms

    pipeline = transforms.Compose([transforms.CenterCrop(148), transforms.Resize(64), transforms.PILToTensor()])
    data = load_uncached(official_root, split="train")
    folder = official_root / "img_align_celeba"
    for index, name in enumerate(data.file_names):
        with Image.open(folder / name) as image:
            expected = pipeline(image.convert("RGB"))
        assert torch.equal(data.images[index], expected), name


def test_draft_decode_is_close(official_root, sample_root):
    # sample_root skips this test without real faces, because noise JPEGs have no smooth regions.
    full = load_uncached(official_root, split="all").images.float()
    drafted = load_uncached(official_root, split="all", draft=True).images.float()
    # Over the 6,000 sample images the mean absolute difference is 1.31 grey levels (Pillow 13.0.0);
    # the bound leaves room for other libjpeg builds.
    assert float((full - drafted).abs().mean()) < 3.0
    assert not torch.equal(full, drafted)


def test_limit_takes_first_images(official_root, source_jpegs):
    data = load_uncached(official_root, split="train", limit=3)
    train_names = [name for (name, _), code in zip(source_jpegs, PARTITIONS) if code == 0]
    assert list(data.file_names) == train_names[:3]
    assert len(data) == 3


def test_cache_hit_skips_decoder(official_root, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = celeba.load("all", official_root, cache_dir=cache_dir, progress=False)
    assert not first.from_cache
    assert first.cache_file.is_file()

    def fail_decode(*arguments, **options):
        raise AssertionError("the decoder ran although a valid cache exists")

    monkeypatch.setattr(celeba, "decode_image", fail_decode)
    second = celeba.load("all", official_root, cache_dir=cache_dir, progress=False)
    assert second.from_cache
    assert torch.equal(second.images, first.images)
    assert torch.equal(second.attributes, first.attributes)
    assert second.file_names == first.file_names


def test_cache_uses_data_root(official_root, tmp_path, monkeypatch):
    monkeypatch.setenv("COREX_EDU_DATA", str(tmp_path / "data"))
    data = celeba.load("val", official_root, progress=False)
    assert data.cache_file.parent == tmp_path / "data" / "cache"
    assert data.cache_file.is_file()


def test_cache_keyed_by_size(official_root, tmp_path):
    small = celeba.load("val", official_root, size=16, cache_dir=tmp_path, progress=False)
    large = celeba.load("val", official_root, size=32, cache_dir=tmp_path, progress=False)
    assert small.cache_file != large.cache_file
    assert not large.from_cache
    assert large.images.shape[-1] == 32


def test_changed_image_invalidates_cache(official_root, tmp_path):
    first = celeba.load("test", official_root, cache_dir=tmp_path, progress=False)
    changed = official_root / "img_align_celeba" / first.file_names[0]
    with Image.open(changed) as image:
        flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    flipped.save(changed, quality=95)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = celeba.load("test", official_root, cache_dir=tmp_path, progress=False)
    assert not second.from_cache
    assert not torch.equal(second.images[0], first.images[0])


def test_unreadable_images_skipped(official_root, source_jpegs, caplog):
    folder = official_root / "img_align_celeba"
    truncated, empty, text = [name for name, _ in source_jpegs][:3]
    (folder / truncated).write_bytes((folder / truncated).read_bytes()[:2000])
    (folder / empty).write_bytes(b"")
    (folder / text).write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="corex_edu.data.celeba"):
        data = load_uncached(official_root, split="all")
    reasons = {item.file_name: item.reason for item in data.skipped}
    assert len(data) == FIXTURE_SIZE - 3
    assert set(reasons) == {truncated, empty, text}
    assert "truncated" in reasons[truncated]
    assert reasons[empty] == "empty file (0 bytes)"
    assert "cannot identify image file" in reasons[text]
    for name in (truncated, empty, text):
        assert name not in data.file_names
        assert name in caplog.text


def test_missing_images_skipped(official_root, source_jpegs, caplog):
    train_names = [name for (name, _), code in zip(source_jpegs, PARTITIONS) if code == 0]
    absent = [train_names[1], train_names[-1]]
    for name in absent:
        (official_root / "img_align_celeba" / name).unlink()
    with caplog.at_level(logging.WARNING, logger="corex_edu.data.celeba"):
        data = load_uncached(official_root, split="train")
    assert data.skipped == tuple(celeba.SkippedImage(name, "missing") for name in absent)
    assert list(data.file_names) == [name for name in train_names if name not in absent]
    assert "2 images of split 'train'" in caplog.text
    assert celeba.inventory(official_root).missing_on_disk == 2


def test_split_without_images_error(official_root, source_jpegs):
    for (name, _), code in zip(source_jpegs, PARTITIONS):
        if code == 2:
            (official_root / "img_align_celeba" / name).unlink()
    with pytest.raises(DataNotFoundError, match="no image of split 'test' could be loaded.*3 were skipped"):
        load_uncached(official_root, split="test")
    assert len(load_uncached(official_root, split="val")) == 3


def test_wrong_image_size_error(official_root, source_jpegs):
    name = source_jpegs[0][0]
    path = official_root / "img_align_celeba" / name
    with Image.open(path) as image:
        resized = image.resize((100, 100))
    resized.save(path)
    with pytest.raises(DataIntegrityError, match=f"{name} is 100x100 pixels, expected 178x218.*expected_size=None"):
        load_uncached(official_root, split="train")
    data = load_uncached(official_root, split="train", expected_size=None, crop=None)
    assert len(data) == PARTITIONS.count(0)


def test_missing_attribute_file_error(official_root):
    (official_root / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataNotFoundError, match="list_attr_celeba.txt is missing") as raised:
        load_uncached(official_root)
    assert "Anno/" in str(raised.value)


def test_garbled_attribute_value_error(official_root):
    path = official_root / "list_attr_celeba.txt"
    path.write_bytes(path.read_bytes().replace(b" 1", b" 2", 1))
    with pytest.raises(DataIntegrityError, match="line 3 has the value '2', expected 1 or -1"):
        load_uncached(official_root)


def test_garbled_partition_file_error(official_root):
    path = official_root / "list_eval_partition.txt"
    path.write_bytes(path.read_bytes() + b"000999.jpg 7\r\n")
    with pytest.raises(DataIntegrityError, match="list_eval_partition.txt line 13 .*0, 1 or 2"):
        load_uncached(official_root)


def test_extra_attribute_field_error(official_root):
    path = official_root / "list_attr_celeba.txt"
    lines = path.read_bytes().split(b"\r\n")
    lines[4] += b" 1"
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(DataIntegrityError, match="line 5 has 42 fields, expected an image name and 40 values"):
        load_uncached(official_root)


def test_kaggle_missing_csv_error(tmp_path, source_jpegs):
    root = build_layout(tmp_path / "kaggle", "kaggle", source_jpegs)
    (root / "list_eval_partition.csv").unlink()
    with pytest.raises(DataNotFoundError, match="list_eval_partition.csv is missing.*Kaggle dataset"):
        celeba.detect_layout(root)


def test_missing_data_message(tmp_path, monkeypatch):
    monkeypatch.setenv("COREX_EDU_CELEBA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as raised:
        celeba.load(progress=False)
    message = str(raised.value)
    for looked_at in ["img_align_celeba/*.jpg", "celeba/img_align_celeba/*.jpg", "img_align_celeba/img_align_celeba/*.jpg"]:
        assert str(tmp_path / "nowhere" / looked_at) in message
    assert "$COREX_EDU_CELEBA" in message
    assert "jessicali9530/celeba-dataset" in message
    assert "BadZipFile" in message
    assert "list_eval_partition.txt" in message


def test_data_check_reports_celeba(official_root, tmp_path, monkeypatch):
    monkeypatch.setenv("COREX_EDU_CELEBA", str(official_root))
    present = status.celeba_status()
    assert present.ready
    assert "official layout, 12 images" in present.detail
    assert "train 6, val 3, test 3" in present.detail

    monkeypatch.setenv("COREX_EDU_CELEBA", str(tmp_path / "nowhere"))
    absent = status.celeba_status()
    assert not absent.ready
    assert "Kaggle" in absent.fix
    assert str(tmp_path / "nowhere" / "img_align_celeba") in absent.detail


def test_real_sample_split_sizes(sample_root):
    assert celeba.inventory(sample_root).split_sizes == {"train": 4560, "val": 780, "test": 660}
    for split, count in [("train", 4560), ("val", 780), ("test", 660)]:
        data = load_uncached(sample_root, split=split, draft=True)
        assert len(data) == count, split
        assert data.skipped == (), split
    assert celeba.detect_layout(sample_root).name == "official"
