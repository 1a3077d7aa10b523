import os

import pytest

os.environ.setdefault("COREX_EDU_PROGRESS", "0")


@pytest.fixture(scope="session")
def mnist_root():
    """Return the data root that contains real MNIST, or fail (never skip) with the fix when it is absent."""
    from corex_edu import paths
    from corex_edu.data import mnist

    if mnist.missing_files():
        pytest.fail(f"MNIST is missing from {mnist.raw_folder()}: run `make data` or `python -m corex_edu data fetch mnist` before the tests")
    return paths.data_root()
