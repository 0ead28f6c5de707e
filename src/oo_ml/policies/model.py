"""Per-user Bayesian ridge regression kept as sufficient statistics.

With prior θ ~ N(μ₀, σ²(λI)⁻¹) and observations r = θ·x + noise, the posterior after updates
(x_i, r_i, w_i) has precision ``A = λI + Σ w_i x_i x_iᵀ`` and ``b = λμ₀ + Σ w_i r_i x_i``; the
posterior mean is ``θ = A⁻¹b``. ``A⁻¹`` is kept up to date by the Sherman–Morrison identity
in O(d²) per update (one compiled call, :func:`oo_ml.policies.kernels.sherman_morrison`) and
re-computed from ``A`` every ``refactor_every`` updates so rounding errors cannot accumulate.

With a discount γ < 1 (to follow drifting preferences), each update first decays the evidence
and tops the prior back up, ``A ← γA + (1−γ)λI + w xxᵀ`` and ``b ← γb + (1−γ)λμ₀ + w r x``,
so old observations fade while the prior keeps ``A`` well conditioned. That step is not rank
one: ``γA + (1−γ)λI`` shifts every eigenvalue of the data part by a different factor, and no
identity turns the old ``A⁻¹`` into the new one without the spectrum, so ``A⁻¹`` is recomputed
(O(d³)) on every discounted update. (Dropping the top-up, ``A ← γA + w xxᵀ``, would be O(d²) by
scaling ``A⁻¹`` by 1/γ before Sherman–Morrison, but lets the prior fade too: a different model,
hence a different policy name.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from oo_ml.errors import StateError, ValidationError
from oo_ml.policies.kernels import posterior_mean, sherman_morrison
from oo_ml.types import FloatArray

__all__ = ["MAX_ABS_FEATURE", "MAX_ABS_REWARD", "STATE_SCHEMA", "RidgeModel", "RidgeState"]

STATE_SCHEMA = "oo-ml.ridge/1"
"""Schema tag written into exported state; bumped whenever the layout changes."""

MAX_ABS_FEATURE = 1e6
MAX_ABS_REWARD = 1e6
"""Bounds on what an update accepts, far beyond any encoder's or rule's range, so that
``A`` and ``b`` cannot overflow whatever a caller sends."""


def _inverse(a: FloatArray) -> FloatArray:
    inv = np.linalg.inv(a)
    return (inv + inv.T) * 0.5  # A is symmetric; keep its inverse exactly so.


@dataclass(slots=True, eq=False)
class RidgeState:
    """The learned statistics of one (user, policy). Mutable: :meth:`RidgeModel.update` edits it.

    ``A`` (d×d), ``b`` (d), ``A_inv`` (d×d, maintained), ``theta`` (d, = A_inv @ b),
    ``prior_mean`` (d), ``n_updates`` and ``since_refactor`` (updates since A⁻¹ was recomputed).
    ``encoder`` names the feature layout the statistics are in.
    """

    encoder: str
    A: FloatArray
    b: FloatArray
    A_inv: FloatArray
    theta: FloatArray
    prior_mean: FloatArray
    n_updates: int = 0
    since_refactor: int = 0

    @property
    def dim(self) -> int:
        return int(self.b.shape[0])

    def copy(self) -> RidgeState:
        """An independent deep copy."""
        return RidgeState(
            self.encoder,
            self.A.copy(),
            self.b.copy(),
            self.A_inv.copy(),
            self.theta.copy(),
            self.prior_mean.copy(),
            self.n_updates,
            self.since_refactor,
        )

    def freeze(self) -> RidgeState:
        """Make the arrays read-only, in place, and return this state: it can then be shared
        without copies, and an update gives the sharer new arrays (see :meth:`RidgeModel.update`)
        instead of writing into these."""
        for array in (self.A, self.b, self.A_inv, self.theta, self.prior_mean):
            array.setflags(write=False)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data (lists of floats, exact under ``json`` round trips)."""
        return {
            "schema": STATE_SCHEMA,
            "encoder": self.encoder,
            "dim": self.dim,
            "A": self.A.tolist(),
            "b": self.b.tolist(),
            "A_inv": self.A_inv.tolist(),
            "prior_mean": self.prior_mean.tolist(),
            "n_updates": self.n_updates,
            "since_refactor": self.since_refactor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RidgeState:
        """Restore what :meth:`to_dict` wrote; refuses other schemas and malformed arrays."""
        if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise StateError(f"expected state schema {STATE_SCHEMA!r}, got {found!r}")
        try:
            dim = int(data["dim"])
            arrays = {
                key: np.array(data[key], dtype=np.float64)
                for key in ("A", "b", "A_inv", "prior_mean")
            }
            n_updates = int(data["n_updates"])
            since_refactor = int(data["since_refactor"])
            encoder = str(data["encoder"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed state: {exc}") from None
        shapes = {"A": (dim, dim), "A_inv": (dim, dim), "b": (dim,), "prior_mean": (dim,)}
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise StateError(f"state {key} has shape {arrays[key].shape}, expected {shape}")
            if not np.isfinite(arrays[key]).all():
                raise StateError(f"state {key} is not finite")
        if n_updates < 0 or since_refactor < 0:
            raise StateError("state counters must be non-negative")
        theta = posterior_mean(arrays["A_inv"], arrays["b"])
        return cls(
            encoder,
            arrays["A"],
            arrays["b"],
            arrays["A_inv"],
            theta,
            arrays["prior_mean"],
            n_updates,
            since_refactor,
        )


@dataclass(frozen=True, slots=True)
class RidgeModel:
    """Hyper-parameters of the ridge model: ``lam`` (prior precision λ > 0), ``discount`` γ in
    (0, 1] and ``refactor_every`` (recompute A⁻¹ after this many updates; 0 = never)."""

    lam: float = 1.0
    discount: float = 1.0
    refactor_every: int = 1000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"lam must be a positive finite number, got {self.lam}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {self.discount}")
        if self.refactor_every < 0:
            raise ValueError(f"refactor_every must be >= 0, got {self.refactor_every}")

    def new_state(self, encoder: str, dim: int, prior_mean: FloatArray | None = None) -> RidgeState:
        """The prior: ``A = λI``, ``b = λμ₀`` (μ₀ = 0 unless a population mean is given)."""
        if prior_mean is None:
            mu = np.zeros(dim)
        else:
            mu = np.array(prior_mean, dtype=np.float64)
            if mu.shape != (dim,):
                raise ValidationError("prior_mean", f"must have shape ({dim},), got {mu.shape}")
            if not np.isfinite(mu).all() or np.abs(mu).max(initial=0.0) > MAX_ABS_REWARD:
                raise ValidationError("prior_mean", "must be finite and bounded")
        a = np.eye(dim) * self.lam
        a_inv = np.eye(dim) / self.lam
        b = mu * self.lam
        return RidgeState(encoder, a, b, a_inv, posterior_mean(a_inv, b), mu, 0, 0)

    def update(self, state: RidgeState, x: FloatArray, reward: float, weight: float = 1.0) -> None:
        """Add one observation: reward ``reward`` for feature row ``x``, with ``weight`` > 0.

        Validates everything before touching ``state``, so a refused update changes nothing.
        """
        row = np.asarray(x, dtype=np.float64)
        if row.shape != state.b.shape:
            raise ValidationError("x", f"must have shape ({state.dim},), got {row.shape}")
        # One dot product checks finiteness and size at once: NaN and ±inf make it non-finite,
        # and ‖x‖² ≤ bound² implies every |x_i| ≤ bound.
        if not row.dot(row) <= MAX_ABS_FEATURE**2:
            raise ValidationError("x", f"must be finite and within ±{MAX_ABS_FEATURE:g}")
        self.update_encoded(state, row, reward, weight)

    def update_encoded(
        self, state: RidgeState, row: FloatArray, reward: float, weight: float = 1.0
    ) -> None:
        """:meth:`update` for a float64 row of the state's dimension that an encoder produced,
        which is finite and bounded by construction: only ``reward`` and ``weight`` are checked.
        """
        # Chained comparisons are False for NaN, so these refuse it along with ±inf.
        if not -MAX_ABS_REWARD <= reward <= MAX_ABS_REWARD:
            raise ValidationError("reward", f"must be finite and within ±{MAX_ABS_REWARD:g}")
        if not 0.0 < weight <= MAX_ABS_REWARD:
            raise ValidationError("weight", "must be a positive finite number")

        if self.discount < 1.0:
            g = self.discount
            top_up = (1.0 - g) * self.lam
            a = g * state.A
            a += row[:, None].dot((weight * row)[None, :])  # the outer product, as below
            a.flat[:: state.dim + 1] += top_up
            state.A = a
            state.b = g * state.b + (weight * reward) * row + top_up * state.prior_mean
            state.A_inv = _inverse(a)
            state.since_refactor = 0
            state.theta = posterior_mean(state.A_inv, state.b)
        else:
            # A store may hand out its own arrays read-only (the memory store does): those are
            # copied before the update writes into them, the others updated in place.
            for name in ("A", "A_inv", "b", "theta"):
                array = getattr(state, name)
                if not array.flags.writeable:
                    setattr(state, name, array.copy())
            sherman_morrison(state.A, state.A_inv, state.b, state.theta, row, reward, weight)
            state.since_refactor += 1
            if self.refactor_every and state.since_refactor >= self.refactor_every:
                self.refactor(state)
        state.n_updates += 1

    @staticmethod
    def refactor(state: RidgeState) -> None:
        """Recompute ``A⁻¹`` (and θ) from ``A``."""
        state.A_inv = _inverse(state.A)
        state.theta = posterior_mean(state.A_inv, state.b)
        state.since_refactor = 0
