"""environment.yml must list the same dependencies, with the same version bounds, as pyproject.toml."""

import re
import tomllib

import yaml

from corex_edu import paths

CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda package name


def requirement(text):
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", text.strip())
    return match.group(1).lower(), match.group(2).replace(" ", "")


def test_environment_matches_pyproject():
    project = tomllib.loads((paths.REPOSITORY_DIR / "pyproject.toml").read_text())["project"]
    expected = dict(requirement(item) for item in project["dependencies"] + project["optional-dependencies"]["dev"])
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in expected.items()}
    environment = yaml.safe_load((paths.REPOSITORY_DIR / "environment.yml").read_text())
    conda = dict(requirement(item) for item in environment["dependencies"] if isinstance(item, str) and not item.startswith(("python", "pip")))
    assert conda == expected
    python = [item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python")]
    assert python == [f"python{project['requires-python']}"]
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert pip_section == ["-e .[dev]"]
