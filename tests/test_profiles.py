import os

import pytest
import torch

from corex_edu.atomic import atomic_open, write_json
from corex_edu.errors import ConfigurationError
from corex_edu.profiles import resolve_device, resolve_profile


def test_profile_default_and_environment(monkeypatch):
    monkeypatch.delenv("COREX_EDU_PROFILE", raising=False)
    assert resolve_profile() == "standard"
    monkeypatch.setenv("COREX_EDU_PROFILE", "quick")
    assert resolve_profile() == "quick"
    assert resolve_profile("paper") == "paper"


def test_unknown_profile():
    with pytest.raises(ConfigurationError, match="unknown profile 'fastest'"):
        resolve_profile("fastest")


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigurationError, match="unknown device"):
        resolve_device("cpu:1")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "summary.json"
    write_json(target, {"version": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as stream:
            stream.write(b'{"version": 2')
            raise RuntimeError("interrupted")
    assert target.read_text() == '{\n  "version": 1\n}\n'
    assert os.listdir(tmp_path) == ["summary.json"]
