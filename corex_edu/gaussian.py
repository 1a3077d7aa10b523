"""Closed-form information quantities of multivariate Gaussians, in nats.

These are the ground truth that the estimators, the toy CorEx fits and the tests are checked
against. All functions take covariance matrices as float64 NumPy arrays.

For x ~ N(mu, S) in d dimensions:

* H(x) = 1/2 ln det(2 pi e S)
* TC(x) = sum_i H(x_i) - H(x) = 1/2 (sum_i ln S_ii - ln det S)   (eq. 1)
* I(a:b) = H(a) + H(b) - H(a, b) for disjoint index sets a and b
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from corex_edu.errors import ConfigurationError

LOG_2_PI_E = float(np.log(2.0 * np.pi * np.e))


def _as_covariance(covariance: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.atleast_2d(np.asarray(covariance, dtype=np.float64))
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ConfigurationError(f"a covariance must be a square matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ConfigurationError("the covariance contains NaN or infinite entries")
    if not np.allclose(matrix, matrix.T, rtol=1e-8, atol=1e-12):
        raise ConfigurationError("the covariance is not symmetric; pass (S + S.T) / 2 if this is rounding")
    return matrix


def _logdet(matrix: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(matrix)
    if sign <= 0:
        raise ConfigurationError(
            "the covariance is not positive definite (its determinant is not positive); "
            "add a small diagonal term or drop linearly dependent dimensions"
        )
    return float(value)


def entropy(covariance: np.ndarray) -> float:
    """Return the differential entropy H(x) = 1/2 ln det(2 pi e S) of N(mu, S), in nats."""
    matrix = _as_covariance(covariance)
    return 0.5 * (matrix.shape[0] * LOG_2_PI_E + _logdet(matrix))


def marginal_entropies(covariance: np.ndarray) -> np.ndarray:
    """Return the vector of H(x_i) = 1/2 ln(2 pi e S_ii), in nats."""
    variances = np.diag(_as_covariance(covariance))
    if np.any(variances <= 0):
        raise ConfigurationError("every variance on the diagonal must be positive")
    return 0.5 * (LOG_2_PI_E + np.log(variances))


def total_correlation(covariance: np.ndarray) -> float:
    """Return TC(x) = sum_i H(x_i) - H(x) of a Gaussian, in nats (eq. 1)."""
    matrix = _as_covariance(covariance)
    variances = np.diag(matrix)
    if np.any(variances <= 0):
        raise ConfigurationError("every variance on the diagonal must be positive")
    return 0.5 * (float(np.sum(np.log(variances))) - _logdet(matrix))


def mutual_information(covariance: np.ndarray, first: Sequence[int], second: Sequence[int]) -> float:
    """Return I(x_first : x_second) of a Gaussian, in nats, for disjoint index sets."""
    matrix = _as_covariance(covariance)
    first, second = list(first), list(second)
    if not first or not second:
        raise ConfigurationError("both index sets must be non-empty")
    if set(first) & set(second):
        raise ConfigurationError(f"the index sets overlap: {sorted(set(first) & set(second))}")
    joint = first + second
    return (
        entropy(matrix[np.ix_(first, first)])
        + entropy(matrix[np.ix_(second, second)])
        - entropy(matrix[np.ix_(joint, joint)])
    )


def conditional_covariance(covariance: np.ndarray, target: Sequence[int], given: Sequence[int]) -> np.ndarray:
    """Return Cov(x_target | x_given), the Schur complement S_tt - S_tg S_gg^-1 S_gt."""
    matrix = _as_covariance(covariance)
    target, given = list(target), list(given)
    s_tt = matrix[np.ix_(target, target)]
    if not given:
        return s_tt
    s_tg = matrix[np.ix_(target, given)]
    s_gg = matrix[np.ix_(given, given)]
    conditional = s_tt - s_tg @ np.linalg.solve(s_gg, s_tg.T)
    return 0.5 * (conditional + conditional.T)


def correlated_pair(rho: float) -> np.ndarray:
    """Return the 2x2 unit-variance covariance with correlation ``rho``; its TC is -1/2 ln(1 - rho^2)."""
    if not -1.0 < rho < 1.0:
        raise ConfigurationError(f"the correlation must lie in (-1, 1), got rho={rho}")
    return np.array([[1.0, rho], [rho, 1.0]])


@dataclass(frozen=True)
class FactorModel:
    """Linear-Gaussian factor model x = W s + e with s ~ N(0, I_k) and e ~ N(0, diag(noise_variance)).

    Conditioned on the k factors the observed variables are independent, so TC(x | s) = 0 and
    a representation that recovers the factors can explain all of TC(x).
    """

    loadings: np.ndarray  # W, shape (d, k)
    noise_variance: np.ndarray  # shape (d,)

    def __post_init__(self) -> None:
        loadings = np.asarray(self.loadings, dtype=np.float64)
        noise = np.asarray(self.noise_variance, dtype=np.float64)
        if loadings.ndim != 2:
            raise ConfigurationError(f"loadings must have shape (d, k), got {loadings.shape}")
        if noise.shape != (loadings.shape[0],):
            raise ConfigurationError(f"noise_variance must have shape ({loadings.shape[0]},), got {noise.shape}")
        if np.any(noise <= 0):
            raise ConfigurationError("every noise variance must be positive")
        object.__setattr__(self, "loadings", loadings)
        object.__setattr__(self, "noise_variance", noise)

    @classmethod
    def random(cls, observed: int, factors: int, noise_variance: float = 1.0, seed: int = 0) -> "FactorModel":
        """Draw a model in which each observed variable loads on exactly one factor.

        Observed variable i loads on factor ``i mod factors`` with a weight drawn from
        U(1, 2), so every factor explains a block of variables, as in the CorEx papers' toys.
        """
        if factors < 1 or observed < factors:
            raise ConfigurationError(f"need 1 <= factors <= observed, got factors={factors}, observed={observed}")
        rng = np.random.default_rng(seed)
        loadings = np.zeros((observed, factors))
        loadings[np.arange(observed), np.arange(observed) % factors] = rng.uniform(1.0, 2.0, size=observed)
        return cls(loadings, np.full(observed, float(noise_variance)))

    @property
    def observed(self) -> int:
        return self.loadings.shape[0]

    @property
    def factors(self) -> int:
        return self.loadings.shape[1]

    @property
    def covariance(self) -> np.ndarray:
        """Cov(x) = W W^T + diag(noise_variance)."""
        return self.loadings @ self.loadings.T + np.diag(self.noise_variance)

    def total_correlation(self) -> float:
        """Return the closed-form TC(x) in nats."""
        return total_correlation(self.covariance)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` samples of x as an (n, d) float64 array."""
        rng = np.random.default_rng(seed)
        factors = rng.standard_normal((n, self.factors))
        noise = rng.standard_normal((n, self.observed)) * np.sqrt(self.noise_variance)
        return factors @ self.loadings.T + noise


@dataclass(frozen=True)
class LinearEncoderDecomposition:
    """The terms of eq. 4 for x ~ N(0, S) and a linear Gaussian encoder z = A x + b + noise, in nats."""

    tc_x: float  # TC(x)
    tc_x_given_z: float  # TC(x | z)
    tc_z: float  # TC(z)

    @property
    def tc_explained(self) -> float:
        """TC(x; z) = TC(x) - TC(x | z) (eq. 3)."""
        return self.tc_x - self.tc_x_given_z

    @property
    def corex_objective(self) -> float:
        """L = TC(x; z) - TC(z) (eq. 4); at most TC(x)."""
        return self.tc_explained - self.tc_z


def linear_encoder_decomposition(
    data_covariance: np.ndarray, weights: np.ndarray, encoder_variance: np.ndarray
) -> LinearEncoderDecomposition:
    """Decompose the CorEx objective exactly for a linear Gaussian encoder.

    Args:
        data_covariance: Cov(x), shape (d, d).
        weights: A, shape (m, d), so that E[z | x] = A x + b.
        encoder_variance: Var(z_j | x), shape (m,), the same for every x.
    """
    s_xx = _as_covariance(data_covariance)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    variance = np.asarray(encoder_variance, dtype=np.float64).reshape(-1)
    if weights.shape[1] != s_xx.shape[0] or variance.shape[0] != weights.shape[0]:
        raise ConfigurationError(
            f"shape mismatch: Cov(x) {s_xx.shape}, weights {weights.shape}, encoder_variance {variance.shape}"
        )
    s_zx = weights @ s_xx
    s_zz = weights @ s_xx @ weights.T + np.diag(variance)
    d = s_xx.shape[0]
    joint = np.block([[s_xx, s_zx.T], [s_zx, s_zz]])
    joint = 0.5 * (joint + joint.T)
    x_given_z = conditional_covariance(joint, range(d), range(d, joint.shape[0]))
    return LinearEncoderDecomposition(
        tc_x=total_correlation(s_xx),
        tc_x_given_z=total_correlation(x_given_z),
        tc_z=total_correlation(0.5 * (s_zz + s_zz.T)),
    )
