"""Skip a notebook under nbval when the data set it needs is absent, except in CI, where it runs and fails.

The requirements come from ``corex_edu.reproduce.NOTEBOOKS``, the registry the main job uses.
"""

import os

import pytest

from corex_edu.reproduce import NOTEBOOKS, missing_requirements


def pytest_collection_modifyitems(config, items):
    by_file = {spec.filename: spec for spec in NOTEBOOKS.values()}
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    reasons: dict[str, str] = {}
    for item in items:
        spec = by_file.get(item.path.name)
        if spec is None:
            continue
        if spec.filename not in reasons:
            missing = missing_requirements(spec)
            reasons[spec.filename] = "; ".join(f"{report.name} is missing ({report.detail}); fix: {report.fix}" for report in missing)
        reason = reasons[spec.filename]
        if reason and not in_ci:
            item.add_marker(pytest.mark.skip(reason=reason))
