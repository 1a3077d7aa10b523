"""Unsupervised MNIST accuracy of stacked CorEx over several seeds, and the cost of an epoch.

    python benchmarks/mnist_clustering.py --seeds 5                 # standard profile, 5 seeds
    python benchmarks/mnist_clustering.py --seeds 2 --profile quick # a smoke run
    python benchmarks/mnist_clustering.py --seeds 1 --covariance diagonal

For every seed it trains the three stages of ``corex_edu.mnist_stacked`` from scratch (no
checkpoints are reused), scores the 10,000 test images with Hungarian matching, and reports the
mean and sample standard deviation of the accuracy. It then times one epoch of a plain
hand-written PyTorch loop on the same network and batch size (a VAE of the layer-1 sizes, with
no checkpointing, history or progress bar) and compares it with the package's layer-1 epoch.
Results go to stdout and, with ``--output``, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corex_edu import mnist_stacked  # noqa: E402
from corex_edu.data import mnist  # noqa: E402
from corex_edu.objectives import bernoulli_marginal_entropies  # noqa: E402


def plain_loop_epoch_seconds(images: torch.Tensor, latents: int, hidden: tuple[int, ...], batch_size: int, seed: int = 0) -> float:
    """Time one epoch of a bare VAE training loop with the layer-1 network (Bernoulli decoder, N(0, I) prior)."""
    torch.manual_seed(seed)
    widths = [784, *hidden]
    encoder_layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        encoder_layers += [nn.Linear(a, b), nn.ReLU()]
    encoder = nn.Sequential(*encoder_layers, nn.Linear(widths[-1], 2 * latents))
    back = [latents, *reversed(hidden)]
    decoder_layers: list[nn.Module] = []
    for a, b in zip(back, back[1:]):
        decoder_layers += [nn.Linear(a, b), nn.ReLU()]
    decoder = nn.Sequential(*decoder_layers, nn.Linear(back[-1], 784))
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    order = torch.randperm(images.shape[0])
    started = time.perf_counter()
    for start in range(0, images.shape[0], batch_size):
        batch = images[order[start : start + batch_size]]
        mean, log_variance = encoder(batch).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
        reconstruction = F.binary_cross_entropy_with_logits(decoder(z), batch, reduction="sum") / batch.shape[0]
        kl = -0.5 * (1 + log_variance - mean.square() - log_variance.exp()).sum(dim=1).mean()
        loss = reconstruction + kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, 0 .. N-1 (default 5)")
    parser.add_argument("--profile", choices=sorted(mnist_stacked.PROFILES), default="standard", help="training profile (default standard)")
    parser.add_argument("--covariance", choices=["full", "diagonal"], default=None, help="class-conditional covariance (default: the profile's)")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON to this file")
    arguments = parser.parse_args(argv)
    if arguments.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {arguments.seeds}")

    config = mnist_stacked.PROFILES[arguments.profile]
    if arguments.covariance is not None:
        config = replace(config, covariance=arguments.covariance)
    train_images, _ = mnist.load("train")
    test_images, test_labels = mnist.load("test")
    train_binary = mnist.binarize(train_images, config.threshold)
    test_binary = mnist.binarize(test_images, config.threshold)
    if config.train_images is not None:
        train_binary = train_binary[: config.train_images]
    entropy_sum = float(bernoulli_marginal_entropies(train_binary).sum())
    print(f"profile {arguments.profile}, covariance {config.covariance}, {train_binary.shape[0]} training images, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")

    per_seed = []
    for seed in range(arguments.seeds):
        started = time.perf_counter()
        run = mnist_stacked.train(config, train_binary, entropy_sum, checkpoint_dir=None, seed=seed, progress=False)
        clusters = mnist_stacked.class_probabilities(run.model, test_binary).argmax(1).numpy()
        score = mnist_stacked.unsupervised_accuracy(clusters, test_labels.numpy(), num_clusters=config.classes)
        init = mnist_stacked.unsupervised_accuracy(run.mixture.responsibilities.argmax(1).numpy(), mnist.load("train")[1][: train_binary.shape[0]].numpy(), num_clusters=config.classes)
        row = {
            "seed": seed,
            "accuracy": score.accuracy,
            "accuracy_after_em_train": init.accuracy,
            "clusters_used": score.clusters_used,
            "layer1_epoch_seconds": statistics.mean(r["seconds"] for r in run.layer1_history.epochs),
            "joint_epoch_seconds": statistics.mean(r["seconds"] for r in run.joint_history.epochs),
            "total_seconds": time.perf_counter() - started,
        }
        per_seed.append(row)
        print(f"seed {seed}: accuracy {score.accuracy:.4f} (after EM {init.accuracy:.4f}), {score.clusters_used} clusters, "
              f"epoch {row['layer1_epoch_seconds']:.2f} s (layer 1) / {row['joint_epoch_seconds']:.2f} s (joint), {row['total_seconds']:.0f} s in all", flush=True)

    accuracies = [row["accuracy"] for row in per_seed]
    sd = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    plain = plain_loop_epoch_seconds(train_binary, config.latents, config.encoder_hidden, config.layer1.batch_size)
    package = statistics.mean(row["layer1_epoch_seconds"] for row in per_seed)
    summary = {
        "profile": arguments.profile,
        "covariance": config.covariance,
        "seeds": arguments.seeds,
        "accuracy_mean": statistics.mean(accuracies),
        "accuracy_sd": sd,
        "per_seed": per_seed,
        "plain_loop_epoch_seconds": plain,
        "package_layer1_epoch_seconds": package,
        "package_over_plain": package / plain,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    print(f"unsupervised accuracy over {arguments.seeds} seeds: {summary['accuracy_mean']:.4f} ± {sd:.4f} (sd)")
    print(f"epoch: package layer 1 {package:.2f} s, plain loop {plain:.2f} s, ratio {package / plain:.2f}")
    if arguments.output is not None:
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
