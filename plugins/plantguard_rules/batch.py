"""A fitted model's statistics over whole arrays of rows at once.

The automatic choice scores every candidate on every held-out fold and on tens
of faulty copies of it; row by row through :class:`~plantguard_rules.mvmodels.Scorer`
that would take minutes.  :func:`batch_statistics` computes the same numbers —
the scorer's statistics, lag window and EWMA included — for a stack of series
in a few array operations per row (the EWMA recursion is the only loop, over
rows, with all series and variables in one step).  ``tests/test_auto_fit.py``
checks it against the scorer.
"""

from __future__ import annotations

import numpy as np

from .base import FloatArray
from .mvmodels import MultivariateModel

__all__ = ["batch_statistics", "ewma"]


def ewma(values: FloatArray, lam: float, *, from_first: bool = False) -> FloatArray:
    """EWMA along axis -2 (rows) of ``values`` (… × n × k).

    From zero, as the scorer smooths standardised values and residuals, or
    ``from_first`` (the first row itself), as it smooths T² and Q.
    """
    out = np.empty_like(values)
    n = values.shape[-2]
    if n == 0:
        return out
    state = values[..., 0, :] if from_first else lam * values[..., 0, :]
    out[..., 0, :] = state
    keep = 1.0 - lam
    for i in range(1, n):
        state = lam * values[..., i, :] + keep * state
        out[..., i, :] = state
    return out


def batch_statistics(model: MultivariateModel, rows: FloatArray) -> FloatArray:
    """Statistics of ``rows`` (… × n × m, no NaN), as the scorer would give them
    row by row from a fresh start: … × n × k, NaN where the lag window fills."""
    lam = model.smoothing or 1.0
    if model.method == "residual":
        z = (rows - model.mean) / model.scale
        smoothed = ewma(z @ model.matrix, lam) if lam < 1 else z @ model.matrix
        stat: FloatArray = np.max(np.abs(smoothed) / model.eigenvalues, axis=-1, keepdims=True)
        return stat
    if model.method == "mewma":
        z = (rows - model.mean) / model.scale
        s = ewma(z, lam) if lam < 1 else z
        d2: FloatArray = np.einsum("...i,ij,...j->...", s, model.matrix, s)[..., None]
        return d2
    return _pca_statistics(model, rows)


def _pca_statistics(model: MultivariateModel, rows: FloatArray) -> FloatArray:
    lags, n = model.lags, rows.shape[-2]
    out = np.full((*rows.shape[:-1], 2), np.nan)
    if n <= lags:
        return out
    lagged = np.concatenate([rows[..., lags - i : n - i, :] for i in range(lags + 1)], axis=-1)
    z = (lagged - model.mean) / model.scale
    t = z @ model.matrix
    resid = z - t @ model.matrix.T
    stats = np.stack([np.sum(t * t / model.eigenvalues, axis=-1), np.sum(resid**2, axis=-1)], -1)
    if model.smoothing:
        stats = ewma(stats, model.smoothing, from_first=True)
    out[..., lags:, :] = stats
    return out
