"""Figures for the notebooks; every axis carries its unit (information in nats)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def estimator_convergence(sample_sizes: Sequence[int], estimates: Mapping[str, np.ndarray], truth: float, title: str = ""):
    """Plot the mean +- sd of several estimators against the sample size, with the closed form as a line.

    ``estimates`` maps an estimator's name to an array of shape (len(sample_sizes), seeds).
    """
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, values in estimates.items():
        values = np.asarray(values)
        axis.errorbar(sample_sizes, values.mean(axis=1), yerr=values.std(axis=1, ddof=1), marker="o", capsize=3, label=name)
    axis.axhline(truth, color="black", linestyle="--", label=f"closed form ({truth:.3f} nats)")
    axis.set_xscale("log")
    axis.set_xlabel("sample size N")
    axis.set_ylabel("estimate (nats)")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    return figure


def toy_training_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], tc_x: float):
    """Plot the population bound, TC(x | z) and TC(z) per epoch for several fits (one colour each)."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (name, rows), colour in zip(histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        epochs = [row["epoch"] for row in rows]
        axes[0].plot(epochs, [row["population_bound"] for row in rows], color=colour, label=f"bound, {name}")
        axes[1].plot(epochs, [row["tc_x_given_z"] for row in rows], color=colour, label=f"TC(x|z), {name}")
        axes[1].plot(epochs, [row["tc_z"] for row in rows], color=colour, linestyle=":", label=f"TC(z), {name}")
    axes[0].axhline(tc_x, color="black", linestyle="--", label=f"TC(x) = {tc_x:.3f}")
    axes[0].set_ylim(bottom=0.0)  # the first epochs are far below zero and would hide the approach to TC(x)
    axes[0].set_ylabel("nats")
    axes[1].set_yscale("symlog", linthresh=1e-3)
    axes[1].set_ylabel("nats (symmetric log scale)")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.legend(fontsize=8)
    axes[0].set_title("population CorEx bound")
    axes[1].set_title("what the bound still misses")
    figure.tight_layout()
    return figure


def bound_terms(history_rows: Sequence[Mapping[str, float]]):
    """Plot the per-epoch training means of the CorEx bound's terms (nats per image)."""
    epochs = [row["epoch"] for row in history_rows]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(epochs, [row["bound"] for row in history_rows], marker="o", label="bound = sum H(x_i) + ELBO")
    axis.plot(epochs, [row["elbo"] for row in history_rows], marker="o", label="ELBO")
    axis.plot(epochs, [-row["kl"] for row in history_rows], marker="o", label="-sum_j KL_j")
    axis.axhline(history_rows[0]["marginal_entropy_sum"], color="black", linestyle="--", label="sum_i H(x_i)")
    axis.set_xlabel("epoch")
    axis.set_ylabel("nats per image")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def image_grid(images: torch.Tensor, rows: int, title: str = "", side: int = 28):
    """Show images of shape (n, side * side) in a grid with ``rows`` rows."""
    images = torch.as_tensor(images).reshape(-1, side, side).cpu().numpy()
    columns = int(np.ceil(images.shape[0] / rows))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9))
    for axis, index in zip(np.atleast_1d(axes).ravel(), range(rows * columns)):
        axis.axis("off")
        if index < images.shape[0]:
            axis.imshow(images[index], cmap="gray", vmin=0, vmax=1)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
