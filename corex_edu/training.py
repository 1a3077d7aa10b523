"""Training loop with seeding, progress bars, a NaN guard and resumable checkpoints.

:func:`fit` minimises ``objective(model, batch, generator).loss()`` with Adam. Given a
checkpoint path it is also the "load if present and matching, else train" helper: a finished
checkpoint with the same fingerprint is loaded instead of training, an unfinished one is
resumed at the next epoch, and one from another configuration raises an error.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from corex_edu import checkpoints
from corex_edu.errors import ConfigurationError, NonFiniteLossError
from corex_edu.objectives import CorExBound

logger = logging.getLogger(__name__)

Objective = Callable[[nn.Module, torch.Tensor, torch.Generator], CorExBound]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress_enabled(requested: bool | None = None) -> bool:
    """Return whether to show progress bars: ``requested``, else not ``$COREX_EDU_PROGRESS=0``."""
    if requested is not None:
        return requested
    return os.environ.get("COREX_EDU_PROGRESS", "1") not in ("0", "false", "no")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every experiment."""

    epochs: int
    batch_size: int
    learning_rate: float = 1e-3
    seed: int = 0
    cosine_decay: bool = False  # anneal the learning rate to 0 over all steps, which removes most SGD noise at the end

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigurationError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigurationError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigurationError(f"learning_rate must be a positive number, got {self.learning_rate!r}")


@dataclass
class TrainHistory:
    """Per-epoch means of the bound's terms (nats) and the wall time of each epoch (seconds)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)  # the loss of every optimisation step
    resumed_from_epoch: int | None = None
    loaded_from_checkpoint: bool = False

    def column(self, name: str) -> np.ndarray:
        return np.array([row[name] for row in self.epochs])


def _epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    # One generator per epoch, derived from (seed, epoch), makes a resumed run draw exactly the
    # batches and noise that an uninterrupted run would have drawn.
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def fit(
    model: nn.Module,
    data: torch.Tensor,
    config: TrainConfig,
    objective: Objective,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_config: Any = None,
    progress: bool | None = None,
    description: str = "training",
    on_epoch_end: Callable[[nn.Module], dict[str, float]] | None = None,
) -> TrainHistory:
    """Train ``model`` on the rows of ``data`` and return its history.

    Args:
        objective: maps (model, batch, generator) to a :class:`CorExBound`; its ``loss()`` is minimised.
        checkpoint_path: where to save after every epoch; an existing matching checkpoint is
            loaded (finished) or resumed (unfinished).
        checkpoint_config: the experiment config stored in the fingerprint, together with
            ``config`` and the architecture; defaults to ``config`` alone.
        on_epoch_end: called with the model after every epoch; the numbers it returns are
            added to that epoch's row of the history (for example closed-form diagnostics).

    Raises:
        NonFiniteLossError: a step produced NaN or inf; the message names the epoch and step.
        CheckpointMismatchError: the checkpoint was saved under another configuration.
    """
    device = torch.device(device)
    model.to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    steps_per_epoch = math.ceil(data.shape[0] / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch) if config.cosine_decay else None
    history = TrainHistory()
    start_epoch = 0

    expected = checkpoints.fingerprint({"train": config, "experiment": checkpoint_config}, model) if checkpoint_path else {}
    if checkpoint_path is not None:
        state = checkpoints.load(checkpoint_path, expected, map_location=device)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            history.epochs, history.steps = list(state["history"]["epochs"]), list(state["history"]["steps"])
            start_epoch = state["epoch"]
            if state["complete"]:
                history.loaded_from_checkpoint = True
                model.eval()
                return history
            history.resumed_from_epoch = start_epoch
            logger.info("resuming %s from %s at epoch %d", description, checkpoint_path, start_epoch)

    n = data.shape[0]
    if n == 0:
        raise ConfigurationError("the training data is empty")
    last_saved_epoch = start_epoch if checkpoint_path is not None else 0
    model.train()
    bar = tqdm(range(start_epoch, config.epochs), desc=description, disable=not progress_enabled(progress), initial=start_epoch, total=config.epochs)
    for epoch in bar:
        started = time.perf_counter()
        generator = _epoch_generator(config.seed, epoch, device)
        order = torch.randperm(n, generator=generator, device=device).cpu()
        sums: dict[str, float] = {}
        batches = 0
        for step_in_epoch, start in enumerate(range(0, n, config.batch_size)):
            batch = data[order[start : start + config.batch_size]].to(device, non_blocking=True)
            terms = objective(model, batch, generator)
            loss = terms.loss()
            if not torch.isfinite(loss):
                last_good = f"{checkpoint_path} after epoch {last_saved_epoch}" if last_saved_epoch else "none saved"
                raise NonFiniteLossError(
                    f"{description}: the loss is {loss.item()} at epoch {epoch + 1}, step {step_in_epoch + 1} "
                    f"(global step {len(history.steps) + 1}); last good checkpoint: {last_good}. "
                    f"Lower learning_rate (now {config.learning_rate}) or check the data for NaN or infinite values."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history.steps.append(float(loss.detach()))
            for key, value in terms.summary().items():
                sums[key] = sums.get(key, 0.0) + value
            batches += 1
        row = {key: value / batches for key, value in sums.items()}
        row["epoch"] = epoch + 1
        row["seconds"] = time.perf_counter() - started
        if on_epoch_end is not None:
            model.eval()
            row.update(on_epoch_end(model))
            model.train()
        history.epochs.append(row)
        bar.set_postfix(bound=f"{row['bound']:.3f}")
        if checkpoint_path is not None:
            _save(checkpoint_path, expected, model, optimizer, scheduler, history, epoch + 1, complete=epoch + 1 == config.epochs)
            last_saved_epoch = epoch + 1
    model.eval()
    return history


def _save(
    path: str | os.PathLike[str],
    expected: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    history: TrainHistory,
    epoch: int,
    complete: bool,
) -> None:
    checkpoints.save(
        path,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": {"epochs": history.epochs, "steps": history.steps},
            "epoch": epoch,
            "complete": complete,
        },
        expected,
    )


def load_or_train(
    model: nn.Module,
    data: torch.Tensor,
    config: TrainConfig,
    objective: Objective,
    checkpoint_path: str | os.PathLike[str],
    **options: Any,
) -> TrainHistory:
    """Load the finished checkpoint at ``checkpoint_path`` if it matches, else train (resuming if possible).

    Takes the same options as :func:`fit`; the checkpoint path is required here.
    """
    return fit(model, data, config, objective, checkpoint_path=checkpoint_path, **options)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: torch.Tensor,
    objective: Objective,
    batch_size: int = 1000,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, tuple[float, float]]:
    """Return (mean, standard error) over the rows of ``data`` for the bound, ELBO, reconstruction and KL, in nats."""
    device = torch.device(device)
    model.eval().to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    columns: dict[str, list[torch.Tensor]] = {"bound": [], "elbo": [], "reconstruction": [], "kl": []}
    for start in range(0, data.shape[0], batch_size):
        terms = objective(model, data[start : start + batch_size].to(device), generator)
        columns["bound"].append(terms.bound.cpu())
        columns["elbo"].append(terms.elbo.cpu())
        columns["reconstruction"].append(terms.reconstruction.cpu())
        columns["kl"].append(terms.kl_per_latent.sum(dim=-1).cpu())
    summary = {}
    for key, parts in columns.items():
        values = torch.cat(parts).double()
        summary[key] = (float(values.mean()), float(values.std() / math.sqrt(values.numel())))
    return summary
