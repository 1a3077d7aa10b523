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


def confusion_matrix(confusion: np.ndarray, mapping: Mapping[int, int], title: str = ""):
    """Show a clusters x labels count matrix with the rows ordered by their matched label."""
    order = sorted(range(confusion.shape[0]), key=lambda k: mapping.get(k, confusion.shape[1] + k))
    matrix = confusion[order]
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    image = axis.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=6,
                      color="white" if count > matrix.max() / 2 else "black")
    axis.set_xticks(range(confusion.shape[1]))
    axis.set_yticks(range(len(order)))
    axis.set_yticklabels([f"{k} → {mapping[k]}" if k in mapping else str(k) for k in order])
    axis.set_xlabel("true label")
    axis.set_ylabel("cluster → matched label")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    return figure


def information_bars(information: np.ndarray, standard_error: np.ndarray | None = None, title: str = "", highlight: Sequence[int] = ()):
    """Bar plot of one information value per latent (nats), with anchored or chosen latents in another colour."""
    information = np.asarray(information)
    colours = ["tab:orange" if index in set(highlight) else "tab:blue" for index in range(information.size)]
    figure, axis = plt.subplots(figsize=(max(6.0, information.size * 0.08), 3.2))
    axis.bar(np.arange(information.size), information, color=colours, yerr=standard_error, error_kw={"linewidth": 0.5})
    axis.set_xlabel("latent index")
    axis.set_ylabel("nats")
    axis.set_title(title)
    figure.tight_layout()
    return figure


def traversal_grid(images: torch.Tensor, row_labels: Sequence[str], column_values: Sequence[float], title: str = ""):
    """Show a (rows, columns, H, W) or (rows, columns, 3, H, W) grid of decoded images with labelled rows and columns."""
    images = torch.as_tensor(images).detach().cpu()
    rows, columns = images.shape[:2]
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.8), squeeze=False)
    for row in range(rows):
        for column in range(columns):
            axis = axes[row, column]
            picture = images[row, column]
            if picture.ndim == 3:
                axis.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())
            else:
                axis.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(row_labels[row], fontsize=7, rotation=0, ha="right", va="center")
            if row == rows - 1:
                axis.set_xlabel(f"{column_values[column]:+.1f}", fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def image_grid_rgb(images: torch.Tensor, rows: int, title: str = ""):
    """Show colour images of shape (n, 3, H, W) with values in [0, 1] in a grid with ``rows`` rows."""
    images = torch.as_tensor(images).detach().cpu()
    columns = int(np.ceil(images.shape[0] / rows))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.0, rows * 1.0), squeeze=False)
    for axis, index in zip(axes.ravel(), range(rows * columns)):
        axis.axis("off")
        if index < images.shape[0]:
            axis.imshow(images[index].permute(1, 2, 0).clamp(0, 1).numpy())
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], title: str = ""):
    """Show a rows x columns matrix of values in [0, 1] (for example normalised information) with labelled axes."""
    figure, axis = plt.subplots(figsize=(max(6.0, 0.22 * len(column_labels) + 2), 0.35 * len(row_labels) + 2))
    image = axis.imshow(matrix, cmap="viridis", vmin=0.0, vmax=max(float(np.max(matrix)), 1e-9), aspect="auto")
    axis.set_xticks(range(len(column_labels)))
    axis.set_xticklabels(column_labels, rotation=90, fontsize=6)
    axis.set_yticks(range(len(row_labels)))
    axis.set_yticklabels(row_labels, fontsize=7)
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.03)
    figure.tight_layout()
    return figure
