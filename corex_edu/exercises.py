"""Check functions for the exercises at the end of each notebook.

Each check prints a short verdict, with a hint when the student's value is wrong, and returns
``True`` or ``False`` so that a notebook or a grader can assert on it. Each docstring states the tolerance.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from corex_edu import gaussian
from corex_edu.objectives import bernoulli_marginal_entropies


def _verdict(correct: bool, success: str, hint: str) -> bool:
    print(("Correct: " + success) if correct else ("Not yet: " + hint))
    return correct


# Notebook 01 ---------------------------------------------------------------------------------

EXERCISE_01_COVARIANCE = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])


def check_tc_three_variables(answer: float) -> bool:
    """Exercise 01.1: TC of N(0, EXERCISE_01_COVARIANCE) in nats, within 1e-6."""
    expected = gaussian.total_correlation(EXERCISE_01_COVARIANCE)
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-6
    hint = (
        "TC(x) = 1/2 (sum_i ln S_ii - ln det S). Use np.linalg.slogdet for ln det S, and remember the result is in nats (natural log)."
        if not (math.isfinite(answer) and abs(answer * math.log(2) - expected) < 1e-6)
        else "your value looks like bits; use the natural logarithm so the answer is in nats."
    )
    return _verdict(correct, f"TC = {expected:.4f} nats.", hint)


def check_rho_for_one_nat(rho: float) -> bool:
    """Exercise 01.2: the positive correlation whose 2-D Gaussian has TC = 1 nat, within 1e-4."""
    expected = math.sqrt(1.0 - math.exp(-2.0))
    correct = abs(rho - expected) < 1e-4
    return _verdict(correct, f"rho = {expected:.4f} gives TC = 1 nat.", "solve -1/2 ln(1 - rho^2) = 1 for rho > 0.")


def check_gap_decomposition(tc_x: float, bound: float, tc_x_given_z: float, tc_z: float, kl_slack: float) -> bool:
    """Exercise 01.3: TC(x) - bound = TC(x | z) + TC(z) + (the slack of the variational bounds), within 1e-6."""
    lhs, rhs = tc_x - bound, tc_x_given_z + tc_z + kl_slack
    correct = abs(lhs - rhs) < 1e-6 and kl_slack >= -1e-9
    hint = f"TC(x) - bound = {lhs:.6f} but your parts add to {rhs:.6f}; the slack is L - bound, where L = TC(x) - TC(x|z) - TC(z), and it cannot be negative."
    return _verdict(correct, f"the gap {lhs:.4f} nats splits into TC(x|z) = {tc_x_given_z:.4f}, TC(z) = {tc_z:.4f} and slack {kl_slack:.4f}.", hint)


# Notebook 02 ---------------------------------------------------------------------------------


def check_marginal_entropy_sum(answer: float, binary_images: torch.Tensor) -> bool:
    """Exercise 02.1: sum_i H(x_i) of the given binary images, in nats, within 1e-3."""
    expected = float(np.sum(bernoulli_marginal_entropies(binary_images)))
    correct = abs(answer - expected) < 1e-3
    hint = "for each pixel, p = mean over images, H = -p ln p - (1 - p) ln(1 - p), with 0 ln 0 = 0; then sum over the 784 pixels."
    if abs(answer * math.log(2) - expected) < 1e-3:
        hint = "your value is in bits; use the natural logarithm."
    return _verdict(correct, f"sum_i H(x_i) = {expected:.3f} nats.", hint)


def check_gaussian_kl(student_kl: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Exercise 02.2: a function (mean, log_variance) -> KL(N(mean, e^log_variance) || N(0, 1)) per entry."""
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(64, 8, generator=generator, dtype=torch.float64) * 2
    log_variance = torch.randn(64, 8, generator=generator, dtype=torch.float64)
    expected = 0.5 * (log_variance.exp() + mean.square() - 1.0 - log_variance)
    try:
        answer = torch.as_tensor(student_kl(mean, log_variance), dtype=torch.float64)
    except Exception as error:  # report any failure of the student's code as a hint
        return _verdict(False, "", f"your function raised {type(error).__name__}: {error}")
    if answer.shape != expected.shape:
        return _verdict(False, "", f"return one KL per entry, shape {tuple(expected.shape)}, not {tuple(answer.shape)} (do not sum).")
    correct = bool(torch.allclose(answer, expected, atol=1e-8))
    return _verdict(correct, "your KL matches 1/2 (sigma^2 + mu^2 - 1 - ln sigma^2) on 512 random cases.", "KL(N(mu, s^2) || N(0, 1)) = 1/2 (s^2 + mu^2 - 1 - ln s^2); log_variance is ln s^2.")


def check_constant_pixels(answer: int, binary_images: torch.Tensor) -> bool:
    """Exercise 02.3: the number of pixels that are constant over the images (they add 0 nats to sum_i H(x_i))."""
    column_mean = torch.as_tensor(binary_images).flatten(start_dim=1).double().mean(dim=0)
    expected = int(((column_mean == 0) | (column_mean == 1)).sum())
    return _verdict(int(answer) == expected, f"{expected} pixels never change, so their entropy is exactly 0.", "count the columns whose mean is exactly 0 or exactly 1.")


# Notebook 03 ---------------------------------------------------------------------------------


def check_hungarian_accuracy(answer: float, confusion: np.ndarray) -> bool:
    """Exercise 03.1: the best one-to-one matched accuracy of a clusters x labels confusion matrix, within 1e-9."""
    from scipy.optimize import linear_sum_assignment

    rows, columns = linear_sum_assignment(-np.asarray(confusion))
    expected = float(np.asarray(confusion)[rows, columns].sum() / np.asarray(confusion).sum())
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-9
    return _verdict(correct, f"accuracy = {expected:.4f}.", "match each cluster to one label so that the matched counts are maximal, then divide by the number of images.")


def check_confident_assignment_information(answer: float) -> bool:
    """Exercise 03.2: I(x : z2) in nats for certain assignments and uniform class shares over 10 classes, within 1e-6."""
    expected = math.log(10)
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-6
    hint = "I(x : z2) = H(q̄(z2)) - E_x H(q(z2 | x)); a certain assignment has zero entropy." if not (math.isfinite(answer) and abs(answer - math.log2(10)) < 1e-6) else "that is in bits; use the natural logarithm."
    return _verdict(correct, f"I = ln 10 = {expected:.4f} nats.", hint)


def check_one_hot_tc(answer: float) -> bool:
    """Exercise 03.3: TC of the one-hot indicators of a categorical with shares (0.5, 0.25, 0.25), in nats, within 1e-6."""
    p = np.array([0.5, 0.25, 0.25])
    expected = float(-(p * np.log(p) + (1 - p) * np.log(1 - p)).sum() + (p * np.log(p)).sum())
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-6
    return _verdict(correct, f"TC = {expected:.4f} nats.", "TC = sum_k H_b(p_k) - H(p), where H_b is the binary entropy of indicator k.")


# Notebook 04 ---------------------------------------------------------------------------------


def check_anchor_weight(answer: float, strength: float) -> bool:
    """Exercise 04.1: the KL weight of an anchored latent for anchoring strength lambda, within 1e-9."""
    expected = 1.0 - strength
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-9
    return _verdict(correct, f"weight = 1 - lambda = {expected:.2f}.", "the bonus lambda I(z_a : x) cancels part of the KL upper bound on I(z_a : x).")


def check_information_ceiling(answer: float, num_images: int) -> bool:
    """Exercise 04.2: ln N in nats for N images, within 1e-6."""
    expected = math.log(num_images)
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-6
    return _verdict(correct, f"ln N = {expected:.3f} nats.", "use the natural logarithm of the number of images.")


def check_binary_mutual_information(answer: float) -> bool:
    """Exercise 04.3: I(b : a) in nats for joint counts [[40, 10], [10, 40]], within 1e-6."""
    joint = np.array([[40.0, 10.0], [10.0, 40.0]]) / 100.0
    product = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    expected = float((joint * np.log(joint / product)).sum())
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-6
    return _verdict(correct, f"I = {expected:.4f} nats.", "I(b : a) = sum p(b, a) ln(p(b, a) / (p(b) p(a))) over the four cells.")


# Notebook 05 ---------------------------------------------------------------------------------


def check_mixture_variance(answer: float) -> bool:
    """Exercise 05.1: variance of the equal mixture of N(-1, 0.25) and N(3, 0.25), within 1e-9."""
    expected = 0.25 + 4.0
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-9
    return _verdict(correct, f"variance = {expected}.", "law of total variance: the mean of the component variances plus the variance of the component means.")


def check_variance_count(answer: int, variances: np.ndarray) -> bool:
    """Exercise 05.2: number of entries of ``variances`` below 0.5 or above 2, exactly."""
    values = np.asarray(variances)
    expected = int(((values < 0.5) | (values > 2.0)).sum())
    return _verdict(int(answer) == expected, f"{expected} of {values.size} latents.", "combine the two conditions with | and count the True entries.")


def check_frechet_1d(answer: float) -> bool:
    """Exercise 05.3: Fréchet distance between N(0, 1) and N(1, 4), within 1e-9."""
    expected = 1.0 + 1.0 + 4.0 - 2.0 * 1.0 * 2.0
    correct = math.isfinite(answer) and abs(answer - expected) < 1e-9
    return _verdict(correct, f"FD = {expected}.", "in one dimension FD = (mu1 - mu2)^2 + s1^2 + s2^2 - 2 s1 s2, with s the standard deviations.")
