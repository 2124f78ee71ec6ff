"""Synthetic faults for choosing a detector without labelled incidents.

A plant has normal history but no labelled faults, so the automatic choice
(:mod:`plantguard_rules.autofit`) makes its own: it copies a stretch of held-out
normal rows and, from a point in it to its end, changes them the ways
instrument and process faults change data — the classes the fault-detection
literature tests against (a bias, a drift, a noisier sensor, a valve or
controller that moves two coupled variables, a relation that stops holding):

``step``
    a constant offset of ``a`` training standard deviations (a bias, a stuck
    valve position);
``drift``
    an offset growing linearly from 0 to ``a`` standard deviations at the end of
    the episode (fouling, a sensor that creeps);
``variance``
    white noise of ``a`` standard deviations added (a loose connection, a
    cavitating pump);
``pair step`` / ``pair drift`` / ``pair variance``
    the same in two strongly correlated variables at once, each moved in the
    direction of their correlation — a change *along* the normal pattern, the
    kind a per-variable residual sees least;
``decorrelation``
    one variable of a correlated pair replaced, over the episode, by its own
    values from half the training period away: its level and spread stay
    normal, the relation to its partner is gone.

Sizes ``a`` are drawn uniformly from 1 to 3 training standard deviations: 1 is
where a single-variable 3-sigma chart starts to miss most of a step, 3 where it
catches it at once; a detector that chooses itself should be judged on the
range where choosing matters.  The draws use a fixed seed, so a choice can be
repeated exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import FloatArray

__all__ = [
    "MAX_PAIRS",
    "MAX_SINGLE",
    "PAIR_CORRELATION",
    "SIZES",
    "Fault",
    "correlated_pairs",
    "inject",
]

#: Sizes of a fault, in training standard deviations (drawn uniformly between).
SIZES = (1.0, 3.0)
#: Variables that get single-variable faults per fold (drawn without replacement):
#: bounds the work on wide groups; different folds draw different variables.
MAX_SINGLE = 6
#: Correlated pairs that get pair faults (the most strongly correlated first).
MAX_PAIRS = 3
#: |correlation| from which two variables count as related: 0.5, the conventional
#: threshold of a "strong" correlation.
PAIR_CORRELATION = 0.5


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: its kind, the variables it touches, its size (σ)."""

    kind: str
    variables: tuple[int, ...]
    size: float


def correlated_pairs(x: FloatArray) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, r)`` of variables whose correlation over ``x`` is at least
    :data:`PAIR_CORRELATION` in size, strongest first, each variable in one pair
    at most, at most :data:`MAX_PAIRS`."""
    m = x.shape[1]
    if m < 2:
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.asarray(np.corrcoef(x, rowvar=False)), nan=0.0)
    iu, ju = np.triu_indices(m, 1)
    r = corr[iu, ju]
    order = np.argsort(-np.abs(r), kind="stable")
    used: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for k in order:
        if abs(r[k]) < PAIR_CORRELATION or len(out) == MAX_PAIRS:
            break
        i, j = int(iu[k]), int(ju[k])
        if i in used or j in used:
            continue
        used.update((i, j))
        out.append((i, j, float(r[k])))
    return out


def inject(
    rows: FloatArray,
    start: int,
    sd: FloatArray,
    *,
    pairs: list[tuple[int, int, float]],
    donor: FloatArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, list[Fault]]:
    """Faulty copies of ``rows`` (n × m), each changed from row ``start`` to the end.

    ``sd`` is each variable's training standard deviation; ``donor`` holds, row
    for row, values of the same variables from elsewhere in the training period
    (for ``decorrelation``).  Returns the copies (F × n × m) and what each one is.
    """
    n, m = rows.shape
    length = n - start
    ramp = np.linspace(1.0 / length, 1.0, length) if length > 0 else np.empty(0)
    faults: list[Fault] = []
    copies: list[FloatArray] = []

    def size() -> float:
        return float(rng.uniform(*SIZES))

    def add(kind: str, variables: tuple[int, ...], a: float, change: FloatArray) -> None:
        x = rows.copy()
        x[start:, list(variables)] += change
        copies.append(x)
        faults.append(Fault(kind, variables, a))

    for j in rng.choice(m, size=min(m, MAX_SINGLE), replace=False):
        v = (int(j),)
        a = size()
        add("step", v, a, np.full((length, 1), a * sd[j]))
        a = size()
        add("drift", v, a, (a * sd[j] * ramp)[:, None])
        a = size()
        add("variance", v, a, rng.normal(0.0, a * sd[j], (length, 1)))
    for i, j, r in pairs:
        both = (i, j)
        direction = np.array([sd[i], np.sign(r) * sd[j]])
        a = size()
        add("pair step", both, a, np.tile(a * direction, (length, 1)))
        a = size()
        add("pair drift", both, a, np.outer(a * ramp, direction))
        a = size()
        add("pair variance", both, a, np.outer(rng.normal(0.0, a, length), direction))
        x = rows.copy()
        x[start:, j] = donor[start:, j]
        copies.append(x)
        faults.append(Fault("decorrelation", both, 0.0))
    return np.stack(copies), faults
