"""Defects of ``torch.distributions`` mended in polysample's classes, whatever the backend.

Each mixin sits between :class:`~polysample.core.distributions.PolysampleDistribution` and the
torch class in the method resolution order, so the polysample class keeps torch's behaviour
apart from the defect. Each is found by the conformance suite (``docs/conformance.md``,
"Findings") and tested in ``tests/test_torch_fixes.py``.
"""

from __future__ import annotations

import copy
import math
from numbers import Real
from typing import Any

import torch
from torch.distributions.utils import lazy_property

__all__ = ["FIXES", "CB_SERIES", "continuous_bernoulli_icdf", "continuous_bernoulli_cdf",
           "continuous_bernoulli_logits"]


def _checked_value(dist: Any, value: Any, like: torch.Tensor) -> torch.Tensor:
    """``value`` validated as torch validates it (when ``validate_args``), a Python number
    as a tensor of ``like``'s dtype and device (torch's transformed families take one); a
    tensor unchanged, so that its dtype promotes as in torch."""
    if dist._validate_args:
        dist._validate_sample(value)
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


class GeneralizedParetoFix:
    """torch 2.13's ``GeneralizedPareto`` compares ``concentration`` with a float32 zero
    (``torch.isclose(concentration, torch.tensor(0.0))``), so ``log_prob``, ``cdf`` and
    ``log_survival_function`` raise ``RuntimeError: Double did not match Float`` for float64
    parameters. Same formulas, with a zero of the parameter's dtype (finding F9)."""

    concentration: torch.Tensor
    scale: Any
    _validate_args: bool

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        z = self._z(value)  # type: ignore[attr-defined]
        eq_zero = torch.isclose(self.concentration, torch.zeros_like(self.concentration))
        safe_conc = torch.where(eq_zero, torch.ones_like(self.concentration),
                                self.concentration)
        y = 1 / safe_conc + torch.ones_like(z)
        where_nonzero = torch.where(y == 0, y, y * torch.log1p(safe_conc * z))
        log_scale = math.log(self.scale) if isinstance(self.scale, Real) else self.scale.log()
        return -log_scale - torch.where(eq_zero, z, where_nonzero)

    def log_survival_function(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        z = self._z(value)  # type: ignore[attr-defined]
        eq_zero = torch.isclose(self.concentration, torch.zeros_like(self.concentration))
        safe_conc = torch.where(eq_zero, torch.ones_like(self.concentration),
                                self.concentration)
        return torch.where(eq_zero, -z, -torch.log1p(safe_conc * z) / safe_conc)


class NumberTemperatureFix:
    """torch 2.13's ``RelaxedBernoulli`` and ``RelaxedOneHotCategorical`` take a Python number
    as ``temperature`` (and draw with it) but their ``log_prob`` calls ``temperature.log()``
    (and ``torch.full_like(temperature, ...)``), which raises ``AttributeError`` for a float.
    Scored here with the temperature as a tensor of the logits' dtype and device; the
    ``temperature`` attribute stays the number the caller gave, as in torch."""

    base_dist: Any

    def log_prob(self, value: Any) -> torch.Tensor:
        base = self.base_dist
        t = base.temperature
        if isinstance(t, torch.Tensor):
            return super().log_prob(value)  # type: ignore[misc,no-any-return]
        # Shallow copies, so that the object itself is never modified (thread safety).
        fixed_base = copy.copy(base)
        fixed_base.temperature = torch.as_tensor(t, dtype=base.logits.dtype,
                                                 device=base.logits.device)
        view = copy.copy(self)
        view.base_dist = fixed_base
        return super(NumberTemperatureFix, view).log_prob(value)  # type: ignore[misc,no-any-return]


class RelaxedOneHotCategoricalFix(NumberTemperatureFix):
    """torch 2.13's ``RelaxedOneHotCategorical`` draws with a temperature per batch element
    only when it has a trailing axis of 1 (``batch_shape + (1,)``: it divides
    ``logits + gumbels`` by it), but its ``log_prob`` then adds the log normaliser, of that
    shape, to scores of shape ``sample_shape + batch_shape``: a RuntimeError (or, with a
    sample shape equal to the batch, scores broadcast into a wrong shape). Scored here with the
    normaliser's trailing axis dropped; any other temperature as torch (or
    :class:`NumberTemperatureFix`) scores it. Its inner ``Categorical`` derives its logits
    exactly (:class:`CategoricalLogitsFix`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _exact_inner(self.base_dist._categorical, _ExactLogitsCategorical)

    def log_prob(self, value: Any) -> torch.Tensor:
        base = self.base_dist
        t = base.temperature
        if not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[-1] != 1:
            return super().log_prob(value)
        if self._validate_args:  # type: ignore[attr-defined]
            self._validate_sample(value)  # type: ignore[attr-defined]
        logits = base.logits
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=logits.dtype, device=logits.device)
        k = logits.shape[-1]
        # ExpRelaxedCategorical at y = log(value), minus log |d value / d y| = sum(y)
        y = value.log()
        score = logits - y * t
        score = (score - score.logsumexp(-1, keepdim=True)).sum(-1)
        log_norm = (math.lgamma(k) + (k - 1) * t.log())[..., 0]
        return score + log_norm - y.sum(-1)


class RelaxedBernoulliFix(NumberTemperatureFix):
    """torch 2.13's ``RelaxedBernoulli.log_prob`` scores the logit ``u`` of the value with
    ``log T + d - 2 log1p(exp(d))``, ``d = logits - T u``, and ``exp(d)`` overflows beyond 88
    in float32 (709 in float64) near 0: ``RelaxedBernoulli(3, probs=0.95).log_prob(2^-50)``
    was ``-inf`` in float32, where the log density is -71.2. The same density with
    ``softplus(d)``; the value clamped to ``[tiny, 1 - eps]`` as torch's sigmoid inverse
    clamps it; a Python number as ``temperature`` as in :class:`NumberTemperatureFix`. Its
    base distribution derives its logits exactly (:class:`BinaryLogitsFix`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _exact_inner(self.base_dist, _ExactLogitRelaxedBernoulli)

    def log_prob(self, value: Any) -> torch.Tensor:
        if self._validate_args:  # type: ignore[attr-defined]
            self._validate_sample(value)  # type: ignore[attr-defined]
        logits = self.base_dist.logits
        t = torch.as_tensor(self.base_dist.temperature, dtype=logits.dtype, device=logits.device)
        if not isinstance(value, torch.Tensor):  # a number, as torch takes one
            value = torch.as_tensor(value, dtype=logits.dtype, device=logits.device)
        fi = torch.finfo(value.dtype)
        x = value.clamp(min=fi.tiny, max=1.0 - fi.eps)
        u = x.log() - (-x).log1p()
        d = logits - u * t
        softplus = torch.nn.functional.softplus
        return t.log() + d - 2 * softplus(d) + softplus(-u) + softplus(u)


class KumaraswamyFix:
    """torch 2.13's ``Kumaraswamy.log_prob`` inverts its three transforms in turn, and
    ``1 - x^a`` rounds to 0 for ``x`` near 1 at small ``a`` (``x = 1 - 2^-23``, ``a = 0.05``
    in float32), giving NaN for values inside the support, which the samplers draw (issue 12,
    support edges). Same density, in log space: ``log a + log b + (a - 1) log x
    + (b - 1) log(1 - x^a)`` with ``log(1 - x^a) = log(-expm1(a log x))``; the products as
    ``xlogy``, so that the density at an end of the support is finite where it is (``a = 1``
    at 0, ``b = 1`` at 1: ``0 * log 0`` was NaN)."""

    concentration1: torch.Tensor
    concentration0: torch.Tensor
    _validate_args: bool

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        a, b = self.concentration1, self.concentration0
        one_minus_xa = -torch.expm1(a * value.log())
        return (a.log() + b.log() + torch.xlogy(a - 1, value)
                + torch.xlogy(b - 1, one_minus_xa))


def log1p_square_ratio(diff: torch.Tensor, scale: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``log(1 + y^2 / c)`` for ``y = diff / scale`` (``c > 0``) without squaring a large
    ``y``: beyond ``sqrt(c)``, as ``2 (log|diff| - log scale) - log c + log1p(c / y^2)``.
    ``y^2`` overflows beyond 1.8e19 in float32 (1.3e154 in float64), where ``log1p(y^2 / c)``
    said inf: the heavy-tailed families' log density was -inf at values their samplers draw
    (a StudentT of df 0.05 in float32: 10% of draws); and ``y`` itself overflows when
    ``|diff|`` is near the dtype's largest value and ``scale < 1`` (a Cauchy of scale 0.5 at
    3e38 in float32), where ``log|diff| - log scale`` does not. Each branch sees safe inputs,
    so neither puts a NaN in the other's gradient."""
    y = diff / scale
    big = y.abs() > c.sqrt()
    one = torch.ones_like(y)
    d_big = torch.where(big, diff, one)
    s_big = torch.where(big, scale, one)
    y_small = torch.where(big, torch.zeros_like(y), y)
    large = (2 * (d_big.abs().log() - s_big.log()) - c.log()
             + torch.log1p(c / (d_big / s_big).square()))
    return torch.where(big, large, torch.log1p(y_small.square() / c))


class StudentTFix:
    """torch 2.13's ``StudentT.log_prob`` squares the standardized value: ``-inf`` beyond
    ``|y| = 1.8e19`` in float32 (draws of small df reach 3e38), where the log density is
    finite. Same formula, with :func:`log1p_square_ratio`."""

    df: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor
    _validate_args: bool

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        z = (self.scale.log() + 0.5 * self.df.log() + 0.5 * math.log(math.pi)
             + torch.lgamma(0.5 * self.df) - torch.lgamma(0.5 * (self.df + 1.0)))
        return -0.5 * (self.df + 1.0) * log1p_square_ratio(value - self.loc, self.scale,
                                                           self.df) - z


def cauchy_log_prob(value: torch.Tensor, loc: Any, scale: torch.Tensor) -> torch.Tensor:
    """The Cauchy log density, with :func:`log1p_square_ratio`."""
    diff = value - loc
    one = torch.ones((), dtype=diff.dtype, device=diff.device)
    return -math.log(math.pi) - scale.log() - log1p_square_ratio(diff, scale, one)


class CauchyFix:
    """torch 2.13's ``Cauchy.log_prob`` squares the standardized value (``-inf`` beyond 1.8e19
    in float32, 1.3e154 in float64, where the log density is finite); with
    :func:`log1p_square_ratio`."""

    loc: torch.Tensor
    scale: torch.Tensor
    _validate_args: bool

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        return cauchy_log_prob(value, self.loc, self.scale)


class HalfCauchyFix:
    """torch 2.13's ``HalfCauchy.log_prob`` is its inner ``Cauchy``'s (torch's own class):
    the same squaring; with :func:`log1p_square_ratio`."""

    base_dist: Any
    _validate_args: bool

    def log_prob(self, value: Any) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        scale = self.base_dist.scale
        value = torch.as_tensor(value, dtype=scale.dtype, device=scale.device)
        lp = math.log(2) + cauchy_log_prob(value, 0.0, scale)
        return torch.where(value >= 0, lp, -math.inf)


class InverseGammaFix:
    """torch 2.13's ``InverseGamma.log_prob`` scores the Gamma at ``1/x`` and adds the
    Jacobian ``-2 log x`` through ``x^-2``, which overflows below about 1e-154 (float64; 1e-19
    in float32): the log density there is hugely negative (``-rate/x``) and torch said
    ``+inf``. The closed form ``a log(rate) - lgamma(a) - (a + 1) log x - rate/x``."""

    concentration: torch.Tensor
    rate: torch.Tensor
    _validate_args: bool

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        a, rate = self.concentration, self.rate
        return (torch.xlogy(a, rate) - torch.lgamma(a) - (a + 1) * value.log()
                - rate / value)


def normal_log_prob(value: Any, loc: Any, scale: Any) -> torch.Tensor:
    """The normal log density from the standardized value, ``-z^2/2 - log scale - log(2 pi)/2``."""
    z = (value - loc) / scale
    log_scale = math.log(scale) if isinstance(scale, Real) else scale.log()
    return -0.5 * z * z - log_scale - 0.5 * math.log(2 * math.pi)  # type: ignore[no-any-return]


class NormalFix:
    """torch 2.13's ``Normal.log_prob`` squares ``value - loc`` before dividing by the
    variance: in float32 the square overflows beyond 1.8e19 although the log density may be
    finite (``Normal(0, 1000).log_prob(1e20)`` was ``-inf``; it is -5e33). With the
    standardized value (:func:`normal_log_prob`)."""

    loc: Any
    scale: Any
    _validate_args: bool

    def log_prob(self, value: Any) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        return normal_log_prob(value, self.loc, self.scale)


def binary_logits(probs: torch.Tensor) -> torch.Tensor:
    """``log(p) - log1p(-p)``, exact for every ``p`` in ``[tiny, 1)`` (torch's
    ``probs_to_logits`` first clamps ``p`` to ``[eps, 1 - eps]``: 1.19e-7 in float32). ``p``
    below the dtype's smallest normal number counts as it, and ``p = 1`` as ``1 - tiny``
    (finite logits, ``+-87.3`` in float32, whose ``sigmoid`` is ``p`` again to rounding);
    gradients are those of the formula, zero where ``p`` was held (never NaN)."""
    fi = torch.finfo(probs.dtype)
    log_q = torch.where(probs < 1, torch.log1p(-probs.clamp(max=1 - fi.eps / 2)),
                        torch.full_like(probs, math.log(fi.tiny)))
    return probs.clamp(min=fi.tiny).log() - log_q


def categorical_logits(probs: torch.Tensor) -> torch.Tensor:
    """``log(p)`` of normalized probabilities, exact for every ``p`` from the dtype's smallest
    normal number on (torch's ``probs_to_logits`` clamps to ``[eps, 1 - eps]``); a category of
    probability 0 scores ``log(tiny)`` (-87.3 in float32), with a zero gradient."""
    return probs.clamp(min=torch.finfo(probs.dtype).tiny).log()


class BinaryLogitsFix:
    """torch 2.13 derives ``logits`` from ``probs`` as the log-odds of the probabilities
    clamped to ``[eps, 1 - eps]`` (``probs_to_logits``): in float32 every probability below
    1.19e-7 reads back as 1.19e-7. Everything torch computes from those logits was then wrong
    for small probabilities: ``Bernoulli(probs=1e-9).log_prob(1)`` was -15.9 (it is -20.7),
    ``Binomial`` likewise, and ``NegativeBinomial(1e6, probs=1e-9)`` had a mean of 0.119 (it is
    0.001), in its ``mean`` and ``log_prob`` and in the draws of every backend, which draw it
    from its logits (an outside trial; finding F19). Here the logits derived from ``probs`` are
    :func:`binary_logits` (exact down to the dtype's smallest normal number); given ``logits``,
    nothing changes."""

    @lazy_property
    def logits(self) -> torch.Tensor:
        return binary_logits(self.probs)  # type: ignore[attr-defined]


class _ExactLogitsCategorical(torch.distributions.Categorical):
    """torch's ``Categorical`` with the logits of :func:`categorical_logits`: the inner
    distribution of ``OneHotCategorical``, ``Multinomial`` and ``RelaxedOneHotCategorical``."""

    @lazy_property
    def logits(self) -> torch.Tensor:
        return categorical_logits(self.probs)


class _ExactLogitRelaxedBernoulli(torch.distributions.relaxed_bernoulli.LogitRelaxedBernoulli):
    """torch's ``LogitRelaxedBernoulli`` with the logits of :func:`binary_logits`: the base
    distribution of ``RelaxedBernoulli``."""

    @lazy_property
    def logits(self) -> torch.Tensor:
        return binary_logits(self.probs)


def _exact_inner(inner: Any, cls: type) -> None:
    """``inner`` (a torch distribution polysample's class built inside its own) as ``cls``, a
    subclass that only derives its logits exactly; ``inner`` keeps its values. Logits torch
    already derived from given ``probs`` (the outer constructor's argument check reads them)
    are dropped, to be derived again exactly when read."""
    if type(inner) is cls.__mro__[1]:
        inner.__class__ = cls
        attrs = inner.__dict__
        if "probs" in attrs and attrs.get("_param") is attrs["probs"]:  # given probs
            attrs.pop("logits", None)


def exact_logits_of_wrapped(dist: Any) -> None:
    """``dist`` (a polysample object that :func:`~polysample.wrap` filled with a torch
    object's attributes) deriving its logits as polysample's constructors do: logits torch
    derived from given ``probs`` are dropped, and inner distributions are replaced by shallow
    copies of the exact classes (the torch object keeps its own)."""
    attrs = dist.__dict__
    if (isinstance(dist, BinaryLogitsFix | CategoricalLogitsFix) and "probs" in attrs
            and attrs.get("_param") is attrs["probs"]):
        attrs.pop("logits", None)
    if isinstance(dist, InnerCategoricalLogitsFix | RelaxedOneHotCategoricalFix):
        owner = attrs
        if isinstance(dist, RelaxedOneHotCategoricalFix):
            owner = attrs["base_dist"] = copy.copy(attrs["base_dist"])
            owner = owner.__dict__
        inner = owner["_categorical"] = copy.copy(owner["_categorical"])
        _exact_inner(inner, _ExactLogitsCategorical)
    elif isinstance(dist, RelaxedBernoulliFix):
        base = attrs["base_dist"] = copy.copy(attrs["base_dist"])
        _exact_inner(base, _ExactLogitRelaxedBernoulli)


class CategoricalLogitsFix:
    """:class:`BinaryLogitsFix` for ``Categorical``: torch's logits derived from ``probs`` are
    the log of the probabilities clamped to ``[eps, 1 - eps]``, so a float32 category of
    probability 1e-9 scored -15.9 (it is -20.7); here :func:`categorical_logits`."""

    @lazy_property
    def logits(self) -> torch.Tensor:
        return categorical_logits(self.probs)  # type: ignore[attr-defined]


class InnerCategoricalLogitsFix:
    """:class:`CategoricalLogitsFix` for the families torch builds around an inner
    ``Categorical`` (``OneHotCategorical``, ``Multinomial``): the inner one derives its logits
    exactly."""

    _categorical: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _exact_inner(self._categorical, _ExactLogitsCategorical)


class GeometricFix(BinaryLogitsFix):
    """torch 2.13's ``Geometric.log_prob`` computes ``value * log1p(-probs) + log(probs)`` from
    ``probs`` also when the distribution was given ``logits``, whose ``sigmoid`` rounds to 1
    for large logits: ``Geometric(logits=100.).log_prob(5.)`` was ``-inf`` (it is -500), and
    at ``logits = 30`` in float64 the value was 3e-5 relative off (finding F15). Built from
    ``logits``, it is scored in log space, ``value * logsigmoid(-logits) + logsigmoid(logits)``
    (exact, with exact gradients); built from ``probs``, torch's formula (which scores
    ``probs = 1`` as torch does)."""

    logits: Any
    _validate_args: bool

    def __init__(self, probs: Any = None, logits: Any = None, validate_args: Any = None) -> None:
        super().__init__(probs, logits, validate_args)  # type: ignore[call-arg]
        self._ps_from_logits = logits is not None

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = super().expand(batch_shape, _instance)  # type: ignore[misc]
        new._ps_from_logits = getattr(self, "_ps_from_logits", False)
        return new

    def log_prob(self, value: Any) -> torch.Tensor:
        if not getattr(self, "_ps_from_logits", False):
            return super().log_prob(value)  # type: ignore[misc, no-any-return]
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        value, logits = torch.distributions.utils.broadcast_all(value, self.logits)
        return value * torch.nn.functional.logsigmoid(-logits) + \
            torch.nn.functional.logsigmoid(logits)


#: Floating dtypes whose count scores are computed in float64 (:class:`_CountScoreFix`).
_NARROW = (torch.float32, torch.float16, torch.bfloat16)


class _CountScoreFix:
    """torch 2.13 scores ``Binomial``, ``NegativeBinomial`` and ``Poisson`` as a difference
    of log-gammas (``lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + ...``) in the
    parameters' dtype: in float32 those terms are about 2e10 for counts of 1e9, with a
    rounding error of about 1e3, so ``Binomial(1e9, logits=17).log_prob(999999936)`` was +768
    (a probability above 1) and ``Binomial(1e7, logits=10).log_prob(9999546)`` -16 instead of
    -3.98 (an outside trial). Narrow dtypes are scored in float64 (the same formula on
    float64 copies: exact to about 1e-5 up to counts of 1e9), the result rounded back;
    gradients flow through the copies."""

    _validate_args: bool

    def _ps_wide(self) -> Any:  # the same law, float64 parameters, not validated again
        raise NotImplementedError

    def log_prob(self, value: Any) -> torch.Tensor:
        dtype = self._ps_dtype()
        if dtype not in _NARROW:
            return super().log_prob(value)  # type: ignore[misc, no-any-return]
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        value = torch.as_tensor(value)
        out = torch.promote_types(dtype, value.dtype)  # torch's result dtype
        return self._ps_wide().log_prob(value.double()).to(out)  # type: ignore[no-any-return]

    def _ps_dtype(self) -> torch.dtype:
        for name in ("logits", "rate"):
            t = self.__dict__.get(name)
            if isinstance(t, torch.Tensor):
                return t.dtype
        return self.probs.dtype  # type: ignore[attr-defined, no-any-return]


class BinomialFix(_CountScoreFix, BinaryLogitsFix):
    __doc__ = _CountScoreFix.__doc__

    def _ps_wide(self) -> Any:
        return torch.distributions.Binomial(
            self.total_count.double(), logits=self.logits.double(),  # type: ignore[attr-defined]
            validate_args=False)


class NegativeBinomialFix(_CountScoreFix, BinaryLogitsFix):
    __doc__ = _CountScoreFix.__doc__

    def _ps_wide(self) -> Any:
        return torch.distributions.NegativeBinomial(
            self.total_count.double(), logits=self.logits.double(),  # type: ignore[attr-defined]
            validate_args=False)


class PoissonFix(_CountScoreFix):
    __doc__ = _CountScoreFix.__doc__

    def _ps_wide(self) -> Any:
        return torch.distributions.Poisson(self.rate.double(),  # type: ignore[attr-defined]
                                           validate_args=False)


class HalfNormalFix:
    """torch 2.13's ``HalfNormal.log_prob`` is its inner ``Normal``'s (torch's own class): the
    same overflow; with :func:`normal_log_prob`."""

    base_dist: Any
    _validate_args: bool

    def log_prob(self, value: Any) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        lp = normal_log_prob(value, 0.0, self.base_dist.scale) + math.log(2)
        return torch.where(value >= 0, lp, -math.inf)


class GumbelFix:
    """torch 2.13's ``Gumbel.log_prob`` is ``y - exp(y) - log scale`` with ``y = (loc - x) /
    scale``: NaN (``inf - inf``) where ``y`` overflows, far below ``loc`` (``-3e38`` at scale
    0.5 in float32, and at ``x = -inf``), where the log density is ``-inf``; ``-inf`` wherever
    ``exp(y)`` overflows."""

    loc: torch.Tensor
    scale: torch.Tensor
    _validate_args: bool

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        y = (self.loc - value) / self.scale
        over = y > math.log(torch.finfo(y.dtype).max)  # exp(y) overflows: the density is 0
        y = torch.where(over, torch.zeros_like(y), y)  # no NaN in the gradient not taken
        return torch.where(over, -math.inf, y - y.exp()) - self.scale.log()


class ParetoFix:
    """torch 2.13's ``Pareto.log_prob`` scores an exponential at ``log(x / scale)``, and
    ``x / scale`` overflows for ``x`` near the dtype's largest value and ``scale < 1`` (-inf
    at 3e38 in float32 for scale 0.5, where the log density is about -311). The same formula
    with ``log x - log scale``: ``log alpha - log scale - (alpha + 1)(log x - log scale)``."""

    scale: torch.Tensor
    alpha: torch.Tensor
    _validate_args: bool

    def log_prob(self, value: Any) -> torch.Tensor:
        value = _checked_value(self, value, self.scale)
        log_scale = self.scale.log()
        return self.alpha.log() - log_scale - (self.alpha + 1) * (value.log() - log_scale)


class WeibullFix:
    """torch 2.13's ``Weibull.log_prob`` inverts a power and an affine transform: in float32
    ``(x / scale)^k`` overflows or underflows, so ``Weibull(2, 2).log_prob`` is NaN at 1e20
    and 3e38 (the log density is -inf at 1e20: ``-(x/scale)^k``) and ``-inf`` at 1e-30 (it is
    -69.8), and it is NaN at 0 (the density there is finite for ``k = 1``, zero above, infinite
    below). The closed form ``log k - k log scale + (k - 1) log x - exp(k (log x - log
    scale))``, the product as ``xlogy``; ``-inf`` below 0."""

    scale: torch.Tensor
    concentration: torch.Tensor
    _validate_args: bool

    def log_prob(self, value: Any) -> torch.Tensor:
        value = _checked_value(self, value, self.scale)
        k, log_scale = self.concentration, self.scale.log()
        inside = value >= 0
        x = torch.where(inside, value, torch.ones_like(value))  # no NaN in the gradient not taken
        lp = (k.log() - k * log_scale + torch.xlogy(k - 1, x)
              - torch.exp(k * (x.log() - log_scale)))
        return torch.where(inside, lp, -math.inf)


class LKJCholeskyFix:
    """torch 2.13's ``LKJCholesky`` builds an inner ``Beta`` (a ``Dirichlet``) with the default
    validation, whatever ``validate_args`` says, from ``concentration + (dim - 2)/2 - offset/2``
    rounded: its last row's second parameter is ``concentration`` rounded away below about
    ``6e-8`` (float32; ``1e-16`` in float64), so ``LKJCholesky(3, torch.tensor(1e-30))`` was
    refused with a message about a ``Dirichlet`` the caller never built, and that constraint
    check reshapes zero elements to ``(0, -1)``: ``LKJCholesky(3, torch.ones(0))`` raised
    ``RuntimeError``. Here torch's checks of ``dim`` run on one element; the inner ``Beta`` is
    built unchecked from ``concentration + ((dim - 2) - offset)/2`` (exact: its parameters come
    from ``concentration``, which torch's own ``arg_constraints`` check, and polysample's
    samplers do not read it); then the distribution's own validation runs as torch's does."""

    dim: int
    concentration: torch.Tensor
    _beta: Any

    def __init__(self, dim: int, concentration: Any = 1.0,
                 validate_args: bool | None = None) -> None:
        (conc,) = torch.distributions.utils.broadcast_all(concentration)
        # torch's checks of dim, on one valid element (the validation setting passed on: a
        # False here would stick to the instance and switch off the check below)
        super().__init__(dim, conc.new_ones(()), validate_args)  # type: ignore[call-arg]
        self.concentration = conc
        offset = torch.arange(dim - 1, dtype=conc.dtype, device=conc.device)
        offset = torch.cat([offset.new_zeros((1,)), offset])
        self._beta = torch.distributions.Beta(offset + 0.5,
                                              conc.unsqueeze(-1) + 0.5 * ((dim - 2) - offset),
                                              validate_args=False)
        torch.distributions.Distribution.__init__(
            self, conc.shape, torch.Size((dim, dim)), validate_args)  # type: ignore[arg-type]


#: ``|logits|`` below which the ContinuousBernoulli CDF and inverse CDF are their Taylor series
#: in the logits (truncation error below 1e-15 relative); the exact formulas above.
CB_SERIES = 1e-5
#: Logits above which they are computed by reflection, ``x -> 1 - x`` at ``-logits``, where
#: ``expm1(logits)`` could overflow float32.
_CB_REFLECT = 80.0


def continuous_bernoulli_logits(probs: torch.Tensor) -> torch.Tensor:
    """The logits of torch's ``ContinuousBernoulli`` law: of its probabilities clamped to
    ``[eps, 1 - eps]`` (``clamp_probs``), as torch's ``cdf``, ``icdf`` and ``log_prob`` use."""
    from torch.distributions.utils import clamp_probs

    p = clamp_probs(probs)
    return torch.log(p) - torch.log1p(-p)


def continuous_bernoulli_icdf(u: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The ContinuousBernoulli inverse CDF ``log1p(u expm1(s)) / s`` at logits ``s``,
    differentiable everywhere.

    torch 2.13 returns ``u`` itself where ``|probs - 1/2| <= 1e-3`` (its "unstable region"), so
    ``rsample()``'s gradient w.r.t. ``probs`` (or ``logits``) is exactly 0 there, and TFP 0.25 at
    ``logits == 0``: the expected gradient at ``probs = 1/2`` is ``1/3`` (finding F14). Near 0
    the series ``u + u (1 - u) s / 2 (1 + (1 - 2u) s / 3)``; above :data:`_CB_REFLECT` the
    reflection ``1 - icdf(1 - u, -s)``.
    """
    small = logits.abs() < CB_SERIES
    big = logits > _CB_REFLECT
    s = torch.where(small, torch.ones_like(logits), torch.where(big, -logits, logits))
    v = torch.where(big, 1 - u, u)
    g = torch.log1p(v * torch.expm1(s)) / s
    exact = torch.where(big, 1 - g, g)
    series = u + u * (1 - u) / 2 * logits * (1 + (1 - 2 * u) / 3 * logits)
    return torch.where(small, series, exact)


def continuous_bernoulli_cdf(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The ContinuousBernoulli CDF ``expm1(s x) / expm1(s)`` on ``[0, 1]`` (0 below, 1 above),
    differentiable everywhere: torch 2.13 returns ``x`` itself where ``|probs - 1/2| <= 1e-3``
    (a zero gradient, and an error up to 5e-4). The series ``x + x (x - 1) s / 2 (1 + (2x - 1)
    s / 6)`` near ``s = 0``, the reflection ``1 - cdf(1 - x, -s)`` for large ``s``."""
    small = logits.abs() < CB_SERIES
    big = logits > _CB_REFLECT
    s = torch.where(small, torch.ones_like(logits), torch.where(big, -logits, logits))
    xc = x.clamp(0, 1)
    v = torch.where(big, 1 - xc, xc)
    g = torch.expm1(s * v) / torch.expm1(s)
    exact = torch.where(big, 1 - g, g)
    series = xc + xc * (xc - 1) / 2 * logits * (1 + (2 * xc - 1) / 6 * logits)
    inside = torch.where(small, series, exact)
    return torch.where(x <= 0, torch.zeros_like(inside),
                       torch.where(x >= 1, torch.ones_like(inside), inside))


class ContinuousBernoulliFix:
    """torch 2.13's ``ContinuousBernoulli.cdf`` and ``icdf`` return the value itself where
    ``|probs - 1/2| <= 1e-3`` (its "unstable region"): a zero gradient w.r.t. ``probs`` and
    ``logits``, and a CDF off by up to 5e-4. The exact formulas, made stable there (finding
    F14): :func:`continuous_bernoulli_cdf`, :func:`continuous_bernoulli_icdf`."""

    probs: torch.Tensor
    _validate_args: bool

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        value = _checked_value(self, value, self.probs)
        return continuous_bernoulli_cdf(value, continuous_bernoulli_logits(self.probs))

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        value = value if isinstance(value, torch.Tensor) else torch.as_tensor(
            value, dtype=self.probs.dtype, device=self.probs.device)
        return continuous_bernoulli_icdf(value, continuous_bernoulli_logits(self.probs))


#: family -> mixin placed before torch's class. A fix of a parent family (Gamma) also applies
#: to its polysample subclasses (Chi2), before their own: torch's subclasses inherit its code.
#: Shape parameters above this make a narrow-dtype ``log_prob`` of the families with
#: log-gamma (or Bessel) normalisers run in float64 (:class:`WideScoreFix`): float32's
#: rounding of ``lgamma(100)`` (about 360) is 2e-5, and grows as ``a log a`` beyond.
WIDE_SCORE_ABOVE = 100.0


class WideScoreFix:
    """torch 2.13 scores the families with log-gamma (or Bessel) normalisers in the
    parameters' dtype, as differences of terms that grow with the shape parameters: in float32
    ``Chi2(1e8).log_prob(1e8)`` was +64 (it is -10.48), ``Gamma(1e8, 1)`` and ``Beta(1e8,
    1e8)`` gave 0 (8.3 and 9.3), ``StudentT(1e7).log_prob(1)`` -0.5 (-1.419), the error
    visible from shape parameters of about 1e4 (an outside trial; the count families, finding
    F18, likewise). Narrow dtypes are scored on a float64 copy of the distribution (its other
    mends included), the result rounded back; gradients flow through the copy. Exact to about
    1e-7 up to shape parameters of 1e8 (float64 itself cancels beyond about 1e14)."""

    _validate_args: bool
    #: The shape parameters whose size decides (set per family in :data:`FIXES`).
    _ps_shapes: tuple[str, ...] = ()

    def log_prob(self, value: Any) -> torch.Tensor:
        dtype = _score_dtype(self)
        if dtype not in _NARROW or not self._ps_large_shapes():
            return super().log_prob(value)  # type: ignore[misc, no-any-return]
        if self._validate_args:
            self._validate_sample(value)  # type: ignore[attr-defined]
        value = torch.as_tensor(value)
        out = torch.promote_types(dtype, value.dtype)  # torch's result dtype
        from .distributions import _float32_view  # (distributions imports this module)

        wide = _float32_view(self, torch.float64)
        wide._validate_args = False
        for inner in ("base_dist", "_categorical"):
            if isinstance(getattr(wide, inner, None), torch.distributions.Distribution):
                getattr(wide, inner)._validate_args = False
        return super(WideScoreFix, wide).log_prob(  # type: ignore[misc, no-any-return]
            value.double() if value.is_floating_point() else value).to(out)

    def _ps_large_shapes(self) -> bool:
        """Whether a shape parameter exceeds :data:`WIDE_SCORE_ABOVE` (one host check: below
        it the float32 formula keeps its precision at torch's speed; float64 costs 2-2.7x)."""
        for name in self._ps_shapes:
            t = _param(self, name)
            if (isinstance(t, torch.Tensor) and not t.is_meta  # (meta: no values to ask)
                    and bool((t.detach() > WIDE_SCORE_ABOVE).any())):
                return True
        return False


def _param(d: Any, name: str) -> Any:
    """``d``'s parameter ``name`` (computed if torch holds it lazily), or None."""
    t = d.__dict__.get(name)
    if t is None:
        try:
            t = getattr(d, name)
        except Exception:  # noqa: BLE001 - a parameter torch cannot compute here
            return None
    return t


def _score_dtype(d: Any) -> torch.dtype | None:
    """The floating dtype of ``d``'s first tensor parameter (None without one)."""
    for name in d.arg_constraints:
        t = _param(d, name)
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return t.dtype
    return None


class StudentTWideFix(WideScoreFix, StudentTFix):
    __doc__ = WideScoreFix.__doc__
    _ps_shapes = ("df",)


class InverseGammaWideFix(WideScoreFix, InverseGammaFix):
    __doc__ = WideScoreFix.__doc__
    _ps_shapes = ("concentration",)


def _wide(name: str, *shapes: str) -> type:
    return type(f"{name}WideFix", (WideScoreFix,), {"_ps_shapes": shapes,
                                                   "__doc__": WideScoreFix.__doc__})


FIXES: dict[str, type] = {
    "Bernoulli": BinaryLogitsFix,
    "Categorical": CategoricalLogitsFix,
    "OneHotCategorical": InnerCategoricalLogitsFix,
    "Multinomial": InnerCategoricalLogitsFix,
    "Binomial": BinomialFix,
    "NegativeBinomial": NegativeBinomialFix,
    "Poisson": PoissonFix,
    "Cauchy": CauchyFix,
    "ContinuousBernoulli": ContinuousBernoulliFix,
    "Geometric": GeometricFix,
    "Gumbel": GumbelFix,
    "HalfNormal": HalfNormalFix,
    "Normal": NormalFix,
    "Pareto": ParetoFix,
    "Weibull": WeibullFix,
    "HalfCauchy": HalfCauchyFix,
    "InverseGamma": InverseGammaWideFix,
    "StudentT": StudentTWideFix,
    "Gamma": _wide("Gamma", "concentration"),
    "Chi2": _wide("Chi2", "df"),
    "Beta": _wide("Beta", "concentration1", "concentration0"),
    "Dirichlet": _wide("Dirichlet", "concentration"),
    "FisherSnedecor": _wide("FisherSnedecor", "df1", "df2"),
    "VonMises": _wide("VonMises", "concentration"),
    "GeneralizedPareto": GeneralizedParetoFix,
    "Kumaraswamy": KumaraswamyFix,
    "LKJCholesky": LKJCholeskyFix,
    "RelaxedBernoulli": RelaxedBernoulliFix,
    "RelaxedOneHotCategorical": RelaxedOneHotCategoricalFix,
}
