import json
import os
import stat

import pytest
import torch

from corex_edu import atomic
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


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permission bits only")
def test_atomic_write_mode_follows_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert atomic.current_umask() == 0o022
        write_json(tmp_path / "new.json", {"a": 1})
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644
        os.umask(0o077)
        atomic.write_text(tmp_path / "private.txt", "x")
        assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    finally:
        os.umask(previous)


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permission bits only")
def test_atomic_write_keeps_existing_mode(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("{}")
    target.chmod(0o640)
    write_json(target, {"b": 2})
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert json.loads(target.read_text()) == {"b": 2}
