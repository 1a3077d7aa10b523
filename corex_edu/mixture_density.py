"""Log-densities of the aggregate posterior of a factorised Gaussian encoder, in nats.

For encoder outputs mean[n, j] and log_variance[n, j] over N data points, the aggregate
posterior is the mixture q(z) = 1/N sum_n prod_j N(z_j; mu_nj, sigma_nj^2), and its marginals
are q(z_j) = 1/N sum_n N(z_j; mu_nj, sigma_nj^2). :func:`mixture_log_density` evaluates both at
query points over every component, with no truncation of far components. It is the kernel
behind ``estimators.aggregate_posterior_mi`` and ``tc_estimators.mixture_total_correlation``.

Each latent's log-density of component n at query z is c_nj - t^2 with
t = (z - mu_nj) / (sqrt(2) sigma_nj) and c_nj = -1/2 ln(2 pi sigma_nj^2). The kernel computes
t for a block of queries and all N components with one small batched matrix product, because
t = z * (1 / (sqrt(2) sigma)) - mu / (sqrt(2) sigma) is an outer product of rank 2. It then
subtracts t^2, exponentiates and sums over n in float32. Blocks are sized to stay in the CPU
cache, so the exponential is the dominant cost. Expanding (z - mu)^2 into z^2 - 2 z mu + mu^2
instead would lose about 1e-7 (mu / sigma)^2 nats to cancellation in float32, whereas the form
above loses about 1e-7 |mu / sigma|.
"""

from __future__ import annotations

import math
import numbers
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from corex_edu.errors import ConfigurationError

LOG_2_PI = math.log(2.0 * math.pi)

# Query points used when the caller does not choose. The Monte Carlo standard error of a mean
# of -ln q is its per-query standard deviation over sqrt(Q). That deviation is 0.71 nats for a
# Gaussian marginal, so 2,048 queries give about 0.016 nats. Cost is proportional to Q.
DEFAULT_NUM_QUERIES = 2048

# Exponents are clamped at this value before exp(). Results below about e^-87 are subnormal
# float32 numbers, which CPUs compute many times slower, and far components (t^2 > 80) are
# common when the encoder noise is small next to the spread of the means. A clamped term
# overstates its component's density by at most e^-80 times the largest peak. Sums small
# enough for that to matter in float32 are recomputed in float64 (see _RECOMPUTE_BELOW).
_EXPONENT_FLOOR = -80.0
# A float32 sum below N * e^-80 * 2^24 may owe more than float32 precision (2^-24) to the
# clamped terms, so such entries are recomputed exactly.
_RECOMPUTE_BELOW = math.exp(_EXPONENT_FLOOR) * 2.0**24

# Elements of one (latents x queries x N) block. 2**18 float32 values are 1 MiB, which fits
# in the L2 cache of current x86 and ARM cores.
# NOTE: the accelerator size is meant to keep kernel launches few; it was not measured.
CPU_BLOCK_ELEMENTS = 2**18
ACCELERATOR_BLOCK_ELEMENTS = 2**25


@dataclass(frozen=True)
class MixtureLogDensity:
    """Aggregate-posterior log-densities at Q query points, float64 tensors, in nats."""

    marginal: torch.Tensor  # ln q(z_j) at each query's j-th coordinate, shape (Q, m)
    joint: torch.Tensor | None  # ln q(z) at each query, shape (Q,); None unless requested


def check_encoder_outputs(
    mean: torch.Tensor | np.ndarray, log_variance: torch.Tensor | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``mean`` and ``log_variance`` as float32 tensors of one shape (N, m), or raise ConfigurationError."""
    mu = torch.as_tensor(mean).detach().float()
    log_var = torch.as_tensor(log_variance).detach().float().to(mu.device)
    if mu.ndim != 2 or mu.shape != log_var.shape:
        raise ConfigurationError(
            f"mean and log_variance must both have shape (N, m), got {tuple(mu.shape)} and {tuple(log_var.shape)}; "
            "pass the encoder outputs for the whole data set, one row per data point"
        )
    if not (torch.isfinite(mu).all() and torch.isfinite(log_var).all()):
        raise ConfigurationError("encoder outputs contain NaN or infinite values; check the encoder for a diverged training run")
    if mu.shape[0] < 2:
        raise ConfigurationError(f"need at least 2 data points, got N={mu.shape[0]}; pass the encoder outputs for the whole data set")
    return mu, log_var


def draw_queries(
    mean: torch.Tensor, log_variance: torch.Tensor, num_queries: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick query rows and draw one z ~ q(z | x_n) for each; return (row indices, z of shape (Q, m)).

    ``num_queries=None`` or any value of at least N uses every row in order. A smaller value
    picks a uniform random subset without replacement, so an average over the queries stays
    unbiased for the whole data set and only its standard error grows.
    """
    n = mean.shape[0]
    if isinstance(num_queries, bool) or not (num_queries is None or isinstance(num_queries, numbers.Integral)):
        raise ConfigurationError(f"num_queries must be an integer or None, got {num_queries!r}")
    if num_queries is not None and num_queries < 2:
        raise ConfigurationError(f"num_queries must be at least 2, got {num_queries}; pass None to use every data point")
    generator = torch.Generator(device=mean.device).manual_seed(seed)
    if num_queries is None or num_queries >= n:
        index = torch.arange(n, device=mean.device)
    else:
        index = torch.randperm(n, generator=generator, device=mean.device)[: int(num_queries)]
    noise = torch.randn(index.numel(), mean.shape[1], generator=generator, device=mean.device)
    return index, mean[index] + torch.exp(0.5 * log_variance[index]) * noise


def default_block_elements(device: torch.device) -> int:
    """Return the block size in elements that suits ``device``: cache-sized on a CPU, large elsewhere."""
    return CPU_BLOCK_ELEMENTS if device.type == "cpu" else ACCELERATOR_BLOCK_ELEMENTS


@torch.no_grad()
def mixture_log_density(
    queries: torch.Tensor,
    mean: torch.Tensor,
    log_variance: torch.Tensor,
    joint: bool = False,
    block_elements: int | None = None,
) -> MixtureLogDensity:
    """Evaluate ln q(z_j) for every query and latent, and ln q(z) when ``joint`` is set.

    Args:
        queries: points z, shape (Q, m), on the device of ``mean``.
        mean, log_variance: float32 encoder outputs, shape (N, m); see :func:`check_encoder_outputs`.
        joint: also evaluate the joint log-density, which adds one float32 (queries x N)
            accumulator per block of queries.
        block_elements: at most this many float32 values per block (4 bytes each);
            ``None`` picks :func:`default_block_elements`. Must be at least N.

    Cost: Q x N x m exponentials. Memory: one block, the (m, Q) result, and three float32
    copies of the (N, m) inputs.
    """
    n, m = mean.shape
    if queries.ndim != 2 or queries.shape[1] != m:
        raise ConfigurationError(f"queries must have shape (Q, {m}), got {tuple(queries.shape)}")
    num_queries = queries.shape[0]
    if block_elements is None:
        block_elements = default_block_elements(mean.device)
    if block_elements < n:
        raise ConfigurationError(
            f"the block size {block_elements} must be at least the number of data points N={n}; raise it or pass None"
        )

    scale = torch.exp(-0.5 * log_variance) / math.sqrt(2.0)  # 1 / (sqrt(2) sigma), shape (N, m)
    # Per-latent coefficients laid out (m, 2, N) so that t = [z, -1] @ [scale; mean * scale].
    coefficients = torch.stack([scale, mean * scale], dim=0).permute(2, 0, 1).contiguous()
    log_normaliser = -0.5 * (LOG_2_PI + log_variance)  # ln of each component's peak density
    # Subtracting each latent's largest peak keeps every exp() at or below 1, so the float32
    # sums cannot overflow. The shift is added back after the log.
    shift = log_normaliser.max(dim=0).values  # (m,)
    offsets = (log_normaliser - shift).T.contiguous()[:, None, :]  # (m, 1, N)

    query_block = max(1, min(num_queries, block_elements // n))
    latent_block = max(1, min(m, block_elements // (n * query_block)))
    features = torch.stack([queries.float(), -torch.ones_like(queries, dtype=torch.float32)], dim=-1)  # (Q, m, 2)
    features = features.permute(1, 0, 2).contiguous()  # (m, Q, 2)

    marginal_sums = torch.empty(m, num_queries, dtype=torch.float32, device=mean.device)
    joint_log_density = torch.empty(num_queries, dtype=torch.float64, device=mean.device) if joint else None

    def evaluate_queries(first: int, stop: int) -> None:
        """Fill marginal_sums and joint_log_density for queries first .. stop - 1."""
        exponent = torch.empty(latent_block, query_block, n, dtype=torch.float32, device=mean.device)
        for q0 in range(first, stop, query_block):
            q1 = min(stop, q0 + query_block)
            # float32 accumulation loses about 1e-7 of each exponent. The components that
            # dominate the joint density have exponents of a few nats per latent, so the loss
            # is below 1e-5 nats.
            joint_exponent = torch.zeros(q1 - q0, n, dtype=torch.float32, device=mean.device) if joint else None
            for j0 in range(0, m, latent_block):
                j1 = min(m, j0 + latent_block)
                block = exponent[: j1 - j0, : q1 - q0]
                torch.bmm(features[j0:j1, q0:q1], coefficients[j0:j1], out=block)  # t
                torch.addcmul(offsets[j0:j1], block, block, value=-1.0, out=block)  # c - t^2 - shift
                if joint_exponent is not None:
                    joint_exponent += block.sum(dim=0)
                block.clamp_(min=_EXPONENT_FLOOR).exp_()
                marginal_sums[j0:j1, q0:q1] = block.sum(dim=2)
            if joint_exponent is not None:
                joint_log_density[q0:q1] = torch.logsumexp(joint_exponent.double(), dim=1) + shift.double().sum()

    _run_split(evaluate_queries, num_queries, query_block, parallel=mean.device.type == "cpu")

    marginal = marginal_sums.double().log_() + shift.double()[:, None]
    # Queries far from every component (beyond about 11 standard deviations) give sums that
    # the exponent floor distorts, and those entries are recomputed in float64.
    inexact = marginal_sums < _RECOMPUTE_BELOW * n
    if inexact.any():
        marginal[inexact] = _exact_marginals(queries, mean, log_variance, inexact, block_elements)
    marginal = marginal.T.contiguous() - math.log(n)
    if joint_log_density is not None:
        joint_log_density -= math.log(n)
    return MixtureLogDensity(marginal=marginal, joint=joint_log_density)


def _run_split(evaluate: Callable[[int, int], None], count: int, step: int, parallel: bool) -> None:
    """Call ``evaluate(first, stop)`` on ranges that cover 0 .. count - 1, in parallel on a CPU.

    torch would split every cache-sized operation across its threads and synchronise them
    after each one. With other processes on the cores a thread often waits for a time slice
    at every synchronisation: on the 2-core benchmark machine, busy with other work, two
    torch threads took 316 s where one took 42 to 69 s. Here each of torch's threads takes
    its own range of queries and runs its operations single-threaded, so the threads meet
    once at the end.

    NOTE: torch's thread count is process-wide, so other Python threads that use torch
    during this call run single-threaded until it returns.
    """
    threads = torch.get_num_threads()
    blocks = -(-count // step)
    if not parallel or threads == 1 or blocks == 1:
        evaluate(0, count)
        return
    workers = min(threads, blocks)
    bounds = [step * (blocks * index // workers) for index in range(workers)] + [count]

    def run(index: int) -> None:
        torch.set_num_threads(1)  # this worker thread's operations stay single-threaded
        evaluate(bounds[index], min(count, bounds[index + 1]))

    try:
        torch.set_num_threads(1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, range(workers)))
    finally:
        torch.set_num_threads(threads)


def _exact_marginals(
    queries: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor, mask: torch.Tensor, block_elements: int
) -> torch.Tensor:
    latent_index, query_index = torch.nonzero(mask, as_tuple=True)
    result = torch.empty(latent_index.numel(), dtype=torch.float64, device=mean.device)
    rows_per_block = max(1, block_elements // mean.shape[0])
    for start in range(0, latent_index.numel(), rows_per_block):
        latents = latent_index[start : start + rows_per_block]
        z = queries[query_index[start : start + rows_per_block], latents].double()[:, None]
        mu = mean[:, latents].double().T
        log_var = log_variance[:, latents].double().T
        log_components = -0.5 * (LOG_2_PI + log_var) - 0.5 * (z - mu).square() * torch.exp(-log_var)
        result[start : start + rows_per_block] = torch.logsumexp(log_components, dim=1)
    return result
