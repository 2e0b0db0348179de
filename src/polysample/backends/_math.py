"""Differentiable helpers shared by the built-in backends."""

from __future__ import annotations

import torch

__all__ = ["expm1_ratio"]


def expm1_ratio(xi: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``expm1(xi * e) / xi``, smooth through ``xi = 0`` (value ``e``, d/dxi ``e**2 / 2``).

    The generalized Pareto transform of a standard exponential ``e``. torch 2.13 switches to the
    exact ``xi == 0`` branch ``e`` with ``torch.where``, whose gradient w.r.t. ``xi`` is then 0
    instead of ``e**2 / 2`` (docs/conformance.md, finding F3). Where ``|xi * e| < 1e-4`` we use
    the Taylor series ``e * (1 + t/2 + t**2/6)`` (truncation error below 1e-17 relative), whose
    gradient is the right one; elsewhere the exact formula.
    """
    t = xi * e
    small = t.abs() < 1e-4
    safe_xi = torch.where(small, torch.ones_like(t), xi)
    exact = torch.expm1(torch.where(small, torch.zeros_like(t), t)) / safe_xi
    series = e * (1 + t * (0.5 + t / 6))
    return torch.where(small, series, exact)
