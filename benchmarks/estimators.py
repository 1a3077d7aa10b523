"""Benchmark corex_edu's information estimators against closed forms and peer libraries, in nats.

Sections:

1. KSG mutual information of a correlated Gaussian pair (rho from 0 to 0.99): corex_edu
   against ennemi, npeet-plus and scikit-learn's mutual_info_regression, all with the same k.
2. KSG total correlation and mutual information of 8- and 32-dimensional factor models
   (corex_edu.gaussian.FactorModel). npeet-plus has no continuous TC, so its TC is the chain
   rule sum_i I(x_i : x_1..x_{i-1}) over its multivariate MI. ennemi and scikit-learn take
   only one-dimensional variables and are left out.
3. TC(z) of linear-Gaussian encoders' aggregate posterior: the full mixture estimator,
   beta-TCVAE's minibatch weighted (MWS) and stratified (MSS) sampling for several batch
   sizes, and kNN TC on samples of q(z).
4. aggregate_posterior_mi: accuracy and time against the number of queries, and wall time and
   peak memory for 10,000 points x 2,048 latents, measured in a child process.

Every row reports the bias (mean minus closed form), the standard deviation over seeds and the
median wall time per call. Install the peers with ``pip install -e '.[bench]'``.

Usage:
    python benchmarks/estimators.py --quick        # prints the tables, under 5 minutes
    python benchmarks/estimators.py                # also writes benchmarks/reports/
    python benchmarks/estimators.py --threads 2    # timings with two threads
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid, fewer seeds; print the tables and write nothing")
    parser.add_argument("--threads", type=int, default=1, help="threads for every estimator and for torch (default 1)")
    parser.add_argument("--k", type=int, default=3, help="neighbours for every kNN estimator (default 3)")
    parser.add_argument(
        "--sections",
        default="pair,factor,encoder,queries,headline",
        help="comma-separated sections to run: pair, factor, encoder, queries, headline (default all)",
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "reports", help="folder for the tables and plots of a full run"
    )
    # Internal: measure one aggregate_posterior_mi call in a fresh process (points, latents, queries).
    parser.add_argument("--aggregate-worker", type=int, nargs=3, metavar=("N", "M", "Q"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


ARGUMENTS = parse_arguments()
# Thread pools read these when numpy and torch load, so they are set before the imports.
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = str(ARGUMENTS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(ARGUMENTS.threads)

from corex_edu import estimators, gaussian, tc_estimators  # noqa: E402

PEER_INSTALL_HINT = "install the peer estimators with: .venv/bin/pip install -e '.[bench]' (run from the repository root)"


@dataclass(frozen=True)
class Grid:
    """Sizes of one benchmark run."""

    rhos: tuple[float, ...]
    mi_sizes: tuple[int, ...]
    mi_seeds: int
    mi_repeats: int  # timed calls per seed; the fastest one counts
    factor_sizes: tuple[int, ...]
    factor_dimensions: tuple[int, ...]
    factor_seeds: int
    encoder_sizes: tuple[int, ...]
    encoder_seeds: int
    batch_sizes: tuple[int, ...]
    query_counts: tuple[int | None, ...]
    headline: tuple[int, int, int]  # aggregate_posterior_mi points, latents, queries


QUICK = Grid(
    rhos=(0.0, 0.6, 0.9, 0.99),
    mi_sizes=(1_000, 10_000),
    mi_seeds=5,
    mi_repeats=1,
    factor_sizes=(1_000,),
    factor_dimensions=(8, 32),
    factor_seeds=5,
    encoder_sizes=(1_000,),
    encoder_seeds=5,
    batch_sizes=(32, 128, 512),
    query_counts=(256, 2_048, None),
    headline=(10_000, 256, 2_048),
)
FULL = Grid(
    rhos=(0.0, 0.3, 0.6, 0.9, 0.95, 0.99),
    mi_sizes=(1_000, 10_000),
    mi_seeds=10,
    mi_repeats=3,
    factor_sizes=(1_000, 10_000),
    factor_dimensions=(8, 32),
    factor_seeds=5,
    encoder_sizes=(1_000, 10_000),
    encoder_seeds=5,
    batch_sizes=(32, 128, 512, 2_048),
    query_counts=(128, 512, 2_048, None),
    headline=(10_000, 2_048, 2_048),
)


def load_peers(k: int, threads: int) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """Return the peer MI estimators, each called as f(x, y) on 1-D arrays, or exit naming the missing package."""
    missing = []
    try:
        import ennemi
    except ImportError:
        missing.append("ennemi")
    try:
        import npeet_plus
    except ImportError:
        missing.append("npeet-plus")
    try:
        from sklearn.feature_selection import mutual_info_regression
    except ImportError:
        missing.append("scikit-learn")
    if missing:
        sys.exit(f"missing peer packages: {', '.join(missing)}; {PEER_INSTALL_HINT}")

    return {
        # ennemi scales both variables to unit variance first (preprocess=True, its default).
        "ennemi": lambda x, y: float(ennemi.estimate_mi(y, x, k=k, max_threads=threads)[0, 0]),
        # npeet-plus reports bits unless base=e, and adds noise of relative size 1e-10.
        "npeet-plus": lambda x, y: float(npeet_plus.mi(x[:, None], y[:, None], k=k, base=math.e)),
        # scikit-learn scales to unit variance, adds small noise and clips negative estimates to 0.
        "scikit-learn": lambda x, y: float(mutual_info_regression(x[:, None], y, n_neighbors=k, random_state=0)[0]),
    }


def timed(function: Callable[[], float], repeats: int = 1) -> tuple[float, float]:
    """Call ``function`` ``repeats`` times; return its value and the fastest wall time in seconds."""
    best, value = math.inf, math.nan
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return value, best


def summarise(values: list[float], seconds: list[float], truth: float) -> dict[str, float]:
    errors = np.asarray(values) - truth
    return {
        "mean": float(np.mean(values)),
        "bias": float(np.mean(errors)),
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "ms": 1e3 * float(np.median(seconds)),
    }


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            return f"{value:.3g}" if abs(value) >= 100 or (value != 0 and abs(value) < 1e-3) else f"{value:.4f}".rstrip("0").rstrip(".")
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


# 1. Gaussian pair ---------------------------------------------------------------------------


def benchmark_pair_mi(grid: Grid, k: int, threads: int) -> list[dict]:
    peers = load_peers(k, threads)
    methods = {"corex_edu": lambda x, y: estimators.knn_mutual_information(x, y, k=k, workers=threads), **peers}
    rows = []
    for n in grid.mi_sizes:
        for rho in grid.rhos:
            truth = gaussian.mutual_information(gaussian.correlated_pair(rho), [0], [1]) if rho > 0 else 0.0
            values = {name: [] for name in methods}
            seconds = {name: [] for name in methods}
            for seed in range(grid.mi_seeds):
                samples = np.random.default_rng(seed).multivariate_normal([0.0, 0.0], gaussian.correlated_pair(rho), size=n)
                x, y = samples[:, 0].copy(), samples[:, 1].copy()
                for name, method in methods.items():
                    value, elapsed = timed(lambda: method(x, y), grid.mi_repeats)
                    values[name].append(value)
                    seconds[name].append(elapsed)
            for name in methods:
                rows.append({"n": n, "rho": rho, "estimator": name, "truth": truth, **summarise(values[name], seconds[name], truth)})
    return rows


def pair_tables(rows: list[dict]) -> str:
    header = ["N", "rho", "I (nats)", "estimator", "bias", "sd", "RMSE", "ms per call", "time / corex_edu", "RMSE / corex_edu"]
    table = []
    for row in rows:
        ours = next(r for r in rows if r["n"] == row["n"] and r["rho"] == row["rho"] and r["estimator"] == "corex_edu")
        table.append(
            [row["n"], row["rho"], row["truth"], row["estimator"], row["bias"], row["sd"], row["rmse"], row["ms"],
             row["ms"] / ours["ms"], row["rmse"] / ours["rmse"] if ours["rmse"] > 0 else math.nan]
        )
    summary_header = ["N", "rho", "corex_edu ms", "fastest peer", "peer ms", "speed-up", "corex_edu RMSE", "best peer RMSE (peer)"]
    summary = []
    for n in sorted({row["n"] for row in rows}):
        for rho in sorted({row["rho"] for row in rows}):
            group = [row for row in rows if row["n"] == n and row["rho"] == rho]
            ours = next(row for row in group if row["estimator"] == "corex_edu")
            peers = [row for row in group if row["estimator"] != "corex_edu"]
            fastest = min(peers, key=lambda row: row["ms"])
            most_accurate = min(peers, key=lambda row: row["rmse"])
            summary.append(
                [n, rho, ours["ms"], fastest["estimator"], fastest["ms"], fastest["ms"] / ours["ms"], ours["rmse"],
                 f"{most_accurate['rmse']:.4f} ({most_accurate['estimator']})"]
            )
    return markdown_table(summary_header, summary) + "\n\n" + markdown_table(header, table)


# 2. Factor models ---------------------------------------------------------------------------


def npeet_chain_rule_tc(samples: np.ndarray, k: int) -> float:
    """TC = sum_i I(x_i : x_1..x_{i-1}) with npeet-plus's multivariate KSG MI, in nats."""
    import npeet_plus

    return float(sum(npeet_plus.mi(samples[:, :i], samples[:, i : i + 1], k=k, base=math.e) for i in range(1, samples.shape[1])))


def benchmark_factor_models(grid: Grid, k: int, threads: int) -> list[dict]:
    import npeet_plus

    rows = []
    for d in grid.factor_dimensions:
        model = gaussian.FactorModel.random(observed=d, factors=max(2, d // 8), seed=0)
        half = d // 2
        truths = {"TC": model.total_correlation(), "MI": gaussian.mutual_information(model.covariance, range(half), range(half, d))}
        methods = {
            ("TC", "corex_edu KSG"): lambda s: estimators.knn_total_correlation(s, k=k, workers=threads),
            ("TC", "npeet-plus chain rule"): lambda s: npeet_chain_rule_tc(s, k),
            ("TC", "corex_edu Gaussian plug-in"): estimators.gaussian_total_correlation,
            ("MI", "corex_edu KSG"): lambda s: estimators.knn_mutual_information(s[:, :half], s[:, half:], k=k, workers=threads),
            ("MI", "npeet-plus"): lambda s: float(npeet_plus.mi(s[:, :half], s[:, half:], k=k, base=math.e)),
        }
        for n in grid.factor_sizes:
            values = {key: [] for key in methods}
            seconds = {key: [] for key in methods}
            for seed in range(grid.factor_seeds):
                samples = model.sample(n, seed=seed)
                for key, method in methods.items():
                    value, elapsed = timed(lambda: method(samples))
                    values[key].append(value)
                    seconds[key].append(elapsed)
            for (quantity, name), value_list in values.items():
                rows.append({"d": d, "n": n, "quantity": quantity, "estimator": name, "truth": truths[quantity],
                             **summarise(value_list, seconds[(quantity, name)], truths[quantity])})
    return rows


def factor_table(rows: list[dict]) -> str:
    header = ["d", "N", "quantity", "closed form", "estimator", "bias", "sd", "ms per call"]
    return markdown_table(header, [[r["d"], r["n"], r["quantity"], r["truth"], r["estimator"], r["bias"], r["sd"], r["ms"]] for r in rows])


# 3. Encoder TC ------------------------------------------------------------------------------

ENCODER_LATENTS = 4
ENCODER_DATA = gaussian.FactorModel.random(observed=8, factors=2, seed=0)
ENCODER_WEIGHTS = np.random.default_rng(1).standard_normal((ENCODER_LATENTS, 8)) / np.sqrt(8)
ENCODER_VARIANCES = (0.1, 1.0)


def benchmark_encoder_tc(grid: Grid, k: int, threads: int) -> list[dict]:
    rows = []
    for variance in ENCODER_VARIANCES:
        for n in grid.encoder_sizes:
            methods: dict[tuple[str, int | None], Callable] = {
                ("mixture, all queries", None): lambda mu, lv, seed: tc_estimators.mixture_total_correlation(mu, lv, num_queries=None, seed=seed).total_correlation,
                ("mixture, 2,048 queries", None): lambda mu, lv, seed: tc_estimators.mixture_total_correlation(mu, lv, seed=seed).total_correlation,
                ("kNN on samples", None): lambda mu, lv, seed: estimators.knn_total_correlation(
                    tc_estimators.sample_aggregate_posterior(mu, lv, seed=seed), k=k, workers=threads
                ),
            }
            for batch_size in grid.batch_sizes:
                if batch_size > n:
                    continue
                methods[("MWS", batch_size)] = lambda mu, lv, seed, m=batch_size: tc_estimators.minibatch_weighted_total_correlation(mu, lv, m, seed=seed).total_correlation
                methods[("MSS", batch_size)] = lambda mu, lv, seed, m=batch_size: tc_estimators.minibatch_stratified_total_correlation(mu, lv, m, seed=seed).total_correlation
            values = {key: [] for key in methods}
            seconds = {key: [] for key in methods}
            truth = math.nan
            for seed in range(grid.encoder_seeds):
                mean, log_variance, truth = tc_estimators.linear_gaussian_encoder(
                    ENCODER_DATA.covariance, ENCODER_WEIGHTS, np.full(ENCODER_LATENTS, variance), n, seed=seed
                )
                mean, log_variance = torch.from_numpy(mean).float(), torch.from_numpy(log_variance).float()
                for key, method in methods.items():
                    value, elapsed = timed(lambda: method(mean, log_variance, seed))
                    values[key].append(value)
                    seconds[key].append(elapsed)
            offset = (ENCODER_LATENTS - 1) * math.log(n)
            for (name, batch_size), value_list in values.items():
                row = {"variance": variance, "n": n, "estimator": name, "batch_size": batch_size, "truth": truth, "offset": offset,
                       **summarise(value_list, seconds[(name, batch_size)], truth)}
                rows.append(row)
    return rows


def encoder_table(rows: list[dict]) -> str:
    header = ["s^2", "N", "TC(z)", "estimator", "batch M", "mean", "bias", "bias - (m-1) ln N", "sd", "ms per call"]
    table = []
    for r in rows:
        corrected = r["bias"] - r["offset"] if r["estimator"] == "MWS" else math.nan
        table.append([r["variance"], r["n"], r["truth"], r["estimator"], r["batch_size"] or "", r["mean"], r["bias"], corrected, r["sd"], r["ms"]])
    return markdown_table(header, table)


# 4. aggregate_posterior_mi ------------------------------------------------------------------


def synthetic_encoder(n: int, m: int, seed: int = 12_345) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Means ~ N(0, 1) and per-latent noise sigma_j log-spaced in [0.05, 3]; I(x : z_j) = 1/2 ln(1 + 1 / sigma_j^2) for N -> infinity."""
    generator = torch.Generator().manual_seed(seed)
    sigma = torch.logspace(math.log10(0.05), math.log10(3.0), m)
    mean = torch.randn(n, m, generator=generator)
    log_variance = (2 * torch.log(sigma)).expand(n, m).contiguous()
    return mean, log_variance, 0.5 * np.log1p(1.0 / sigma.double().numpy() ** 2)


def benchmark_query_counts(grid: Grid) -> list[dict]:
    n, m = 10_000, 64
    mean, log_variance, closed_form = synthetic_encoder(n, m)
    reference = None
    rows = []
    for queries in sorted(grid.query_counts, key=lambda q: math.inf if q is None else q, reverse=True):
        start = time.perf_counter()
        result = estimators.aggregate_posterior_mi(mean, log_variance, num_queries=queries)
        elapsed = time.perf_counter() - start
        if reference is None:
            reference = result.mutual_information  # the first call uses every query
        rows.append({
            "queries": result.num_queries,
            "seconds": elapsed,
            "ns_per_density": 1e9 * elapsed / (result.num_queries * n * m),
            "mean_se": float(np.mean(result.standard_error)),
            "max_error_vs_all": float(np.max(np.abs(result.mutual_information - reference))),
            "max_error_vs_closed_form": float(np.max(np.abs(result.mutual_information - closed_form))),
        })
    return rows


def query_table(rows: list[dict]) -> str:
    header = ["queries", "seconds", "ns per density", "mean standard error", "max abs. difference from all queries", "max abs. error vs closed form"]
    return markdown_table(header, [[r["queries"], r["seconds"], r["ns_per_density"], r["mean_se"], r["max_error_vs_all"], r["max_error_vs_closed_form"]] for r in rows])


def measure_headline(points: int, latents: int, queries: int, threads: int) -> dict:
    """Run one aggregate_posterior_mi call in a child process; return its wall time and the child's peak RSS."""
    command = [sys.executable, __file__, "--threads", str(threads), "--aggregate-worker", str(points), str(latents), str(queries)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux
    return result


def aggregate_worker(points: int, latents: int, queries: int) -> None:
    mean, log_variance, _ = synthetic_encoder(points, latents)
    start = time.perf_counter()
    result = estimators.aggregate_posterior_mi(mean, log_variance, num_queries=queries)
    elapsed = time.perf_counter() - start
    print(json.dumps({"points": points, "latents": latents, "queries": result.num_queries, "seconds": elapsed,
                      "mean_se": float(np.mean(result.standard_error)), "threads": torch.get_num_threads()}))


# Plots --------------------------------------------------------------------------------------


def plot_pair(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in rows})
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    figure, axes = plt.subplots(2, len(sizes), figsize=(5.5 * len(sizes), 7), squeeze=False)
    for column, n in enumerate(sizes):
        for offset, name in enumerate(names):
            group = [r for r in rows if r["n"] == n and r["estimator"] == name]
            rhos = np.array([r["rho"] for r in group]) + 0.004 * (offset - 1.5)
            axes[0, column].errorbar(rhos, [r["bias"] for r in group], yerr=[r["sd"] for r in group], marker="o", capsize=3, label=name)
            axes[1, column].plot([r["rho"] for r in group], [r["ms"] for r in group], marker="o", label=name)
        axes[0, column].axhline(0.0, color="black", linewidth=0.8)
        axes[0, column].set(title=f"N = {n:,}", xlabel="correlation rho", ylabel="bias +- sd (nats)")
        axes[1, column].set(xlabel="correlation rho", ylabel="wall time per call (ms)", yscale="log")
    axes[0, 0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_encoder(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    panels = sorted({(r["variance"], r["n"]) for r in rows})
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for axis, (variance, n) in zip(axes[0], panels):
        group = [r for r in rows if r["variance"] == variance and r["n"] == n]
        for name, label in (("MSS", "MSS"), ("MWS", "MWS - (m-1) ln N")):
            points = [r for r in group if r["estimator"] == name]
            shift = points[0]["offset"] if name == "MWS" else 0.0
            axis.errorbar([r["batch_size"] for r in points], [r["bias"] - shift for r in points], yerr=[r["sd"] for r in points], marker="o", capsize=3, label=label)
        for name, style in (("mixture, all queries", "--"), ("kNN on samples", ":")):
            row = next(r for r in group if r["estimator"] == name)
            axis.axhline(row["bias"], linestyle=style, color="grey" if style == "--" else "black", label=f"{name} bias")
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set(xscale="log", title=f"s^2 = {variance}, N = {n:,}, TC = {group[0]['truth']:.3f}", xlabel="batch size M", ylabel="bias (nats)")
    axes[0, 0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_queries(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 4))
    queries = [r["queries"] for r in rows]
    axis.plot(queries, [r["mean_se"] for r in rows], marker="o", label="mean standard error")
    subsets = [r for r in rows if r["max_error_vs_all"] > 0]  # the all-queries row is the reference itself
    axis.plot([r["queries"] for r in subsets], [r["max_error_vs_all"] for r in subsets], marker="s", label="max |difference| from all queries")
    axis.set(xscale="log", yscale="log", xlabel="num_queries", ylabel="nats", title="aggregate_posterior_mi, N = 10,000, m = 64")
    twin = axis.twinx()
    twin.plot(queries, [r["seconds"] for r in rows], color="black", linestyle=":", marker="^", label="seconds")
    twin.set(ylabel="wall time (s)", yscale="log")
    axis.legend(loc="lower left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# Main ---------------------------------------------------------------------------------------


def machine_description(threads: int) -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores visible, {threads} thread(s) used; Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"


def main() -> None:
    arguments = ARGUMENTS
    if arguments.aggregate_worker:
        aggregate_worker(*arguments.aggregate_worker)
        return
    grid = QUICK if arguments.quick else FULL
    started = time.perf_counter()
    sections = []

    def report(title: str, text: str) -> None:
        print(f"\n## {title}\n\n{text}", flush=True)
        sections.append(f"## {title}\n\n{text}")

    header = f"Machine: {machine_description(arguments.threads)}. k = {arguments.k}. Date: {datetime.date.today().isoformat()}."
    print(header, flush=True)

    selected = set(arguments.sections.split(","))
    unknown = selected - {"pair", "factor", "encoder", "queries", "headline"}
    if unknown:
        sys.exit(f"unknown sections {sorted(unknown)}; choose from pair, factor, encoder, queries, headline")
    results: dict[str, object] = {}
    if "pair" in selected:
        results["pair"] = benchmark_pair_mi(grid, arguments.k, arguments.threads)
        report("1. Mutual information of a Gaussian pair", pair_tables(results["pair"]))
    if "factor" in selected:
        results["factor"] = benchmark_factor_models(grid, arguments.k, arguments.threads)
        report("2. Factor models", factor_table(results["factor"]))
    if "encoder" in selected:
        results["encoder"] = benchmark_encoder_tc(grid, arguments.k, arguments.threads)
        report("3. TC(z) of linear-Gaussian encoders (m = 4 latents)", encoder_table(results["encoder"]))
    if "queries" in selected:
        results["queries"] = benchmark_query_counts(grid)
        report("4a. aggregate_posterior_mi against num_queries (N = 10,000, m = 64)", query_table(results["queries"]))
    if "headline" in selected:
        headline = measure_headline(*grid.headline, arguments.threads)
        results["headline"] = headline
        report(
            "4b. aggregate_posterior_mi at full size",
            markdown_table(
                ["points", "latents", "queries", "threads", "seconds", "peak RSS (MiB)", "mean standard error (nats)"],
                [[headline["points"], headline["latents"], headline["queries"], headline["threads"], headline["seconds"], headline["peak_rss_mib"], headline["mean_se"]]],
            ),
        )
    total = time.perf_counter() - started
    print(f"\nTotal wall time: {total:.0f} s", flush=True)

    if arguments.quick:
        return
    arguments.output.mkdir(parents=True, exist_ok=True)
    suffix = f"{arguments.threads}thread" + ("" if len(selected) == 5 else "_" + "-".join(sorted(selected)))
    if "pair" in results:
        plot_pair(results["pair"], arguments.output / f"pair_mi_{suffix}.png")
    if "encoder" in results:
        plot_encoder(results["encoder"], arguments.output / f"encoder_tc_{suffix}.png")
    if "queries" in results:
        plot_queries(results["queries"], arguments.output / f"aggregate_queries_{suffix}.png")
    command = "python benchmarks/estimators.py" + "".join(
        f" {flag}" for flag, used in ((f"--threads {arguments.threads}", arguments.threads != 1), (f"--sections {arguments.sections}", len(selected) < 5)) if used
    )
    text = "\n\n".join([f"# Estimator benchmark\n\n{header}\n\nCommand: `{command}`, total wall time {total:.0f} s.", *sections])
    (arguments.output / f"estimators_{suffix}.md").write_text(text + "\n")
    (arguments.output / f"estimators_{suffix}.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {arguments.output}", flush=True)


if __name__ == "__main__":
    main()
