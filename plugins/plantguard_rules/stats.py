"""Quantiles of the normal, chi-squared and F distributions, without scipy.

Control limits of multivariate statistics are quantiles of these distributions
(T² of the F distribution, SPE/Q through the normal approximation of Jackson
and Mudholkar).  They are computed once when a model is fitted, so a careful
bisection on the cumulative distribution is fast enough and keeps PlantGuard
free of a heavy dependency.  The cumulative functions use the classic series
and continued-fraction expansions of the regularised incomplete gamma and beta
functions, accurate to ~1e-12 over the ranges used here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["chi2_cdf", "chi2_ppf", "f_cdf", "f_ppf", "norm_cdf", "norm_ppf"]

_EPS = 1e-15
_TINY = 1e-300


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _gamma_p(a: float, x: float) -> float:
    """Regularised lower incomplete gamma P(a, x)."""
    if x <= 0:
        return 0.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # series
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return total * math.exp(log_front)
    # continued fraction for Q(a, x) (modified Lentz)
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return 1.0 - math.exp(log_front) * h


def _beta_cf(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1, a - 1
    c = 1.0
    d = 1 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1 / d
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return h


def _beta_i(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1 - x) / b


def chi2_cdf(x: float, dof: float) -> float:
    return _gamma_p(dof / 2, x / 2)


def f_cdf(x: float, d1: float, d2: float) -> float:
    if x <= 0:
        return 0.0
    return _beta_i(d1 / 2, d2 / 2, d1 * x / (d1 * x + d2))


def _invert(cdf: Callable[[float], float], p: float, low: float, high: float) -> float:
    if not 0 < p < 1:
        raise ValueError(f"probability {p} must be strictly between 0 and 1")
    while cdf(high) < p:
        high *= 2
    for _ in range(200):
        mid = 0.5 * (low + high)
        if cdf(mid) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (low + high)


def norm_ppf(p: float) -> float:
    return _invert(norm_cdf, p, -40.0, 40.0)


def chi2_ppf(p: float, dof: float) -> float:
    return _invert(lambda x: chi2_cdf(x, dof), p, 0.0, max(1.0, 4 * dof))


def f_ppf(p: float, d1: float, d2: float) -> float:
    return _invert(lambda x: f_cdf(x, d1, d2), p, 0.0, 10.0)
