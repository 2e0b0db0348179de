"""Torch family -> TFP distribution, for either substrate.

Each :class:`TfpFamily` names the canonical torch parameters it reads (see
:mod:`polysample.core.families`) and builds the TFP distribution from them. Builders receive the
substrate's ``tfp`` module, so the same table serves JAX and TensorFlow. Every mapping below was
checked against torch's definition (the conformance suite checks it again, against SciPy):

* ``Geometric``: both count failures before the first success (support 0, 1, ...), ``probs`` is
  the success probability in both.
* ``NegativeBinomial``: both count successes before ``total_count`` failures, ``probs`` is the
  success probability in both (mean ``total_count * p / (1 - p)``).
* ``Pareto``: both are type I (support ``x >= scale``); torch ``alpha`` is TFP ``concentration``.
* ``InverseGamma``: TFP's ``scale`` is the rate-like beta of ``beta**a / Gamma(a) x**(-a-1)
  exp(-beta/x)``, i.e. torch's ``rate``.
* ``Weibull``: torch ``(scale, concentration)`` is TFP ``(concentration, scale)``.
* ``LowRankMultivariateNormal``: covariance ``W W^T + diag(D)`` in both; TFP's
  ``cov_diag_factor`` is the diagonal of the covariance itself (``D``), not its square root.
* ``LKJCholesky`` <-> ``CholeskyLKJ``, ``Wishart`` <-> ``WishartTriL`` (matrices out, not
  Cholesky factors), ``MultivariateNormal`` <-> ``MultivariateNormalTriL``,
  ``HalfCauchy(scale)`` <-> ``HalfCauchy(0, scale)``.

``log_prob`` is TFP's, except where TFP and torch disagree at the edges of the parameters or the
support (see ``TfpFamily.score``): there the scorer computes torch's value with TFP's
operations, or (``ContinuousBernoulli``) torch scores it.

Families TFP lacks are composed (``log_prob`` then falls back to torch):
``FisherSnedecor`` from two TFP Gamma draws, ``LogisticNormal`` as a TFP Normal draw followed by
torch's ``StickBreakingTransform``, ``OneHotCategoricalStraightThrough`` as a TFP
``OneHotCategorical`` draw plus torch's straight-through term.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...core.torch_fixes import CB_SERIES
from .._math import LARGE_BINOMIAL_VARIANCE, LARGE_COUNT, LARGE_RATE, VON_MISES_NORMAL_LIMIT

__all__ = ["TfpFamily", "TFP_FAMILIES", "MIXTURE_COMPONENTS", "WIDEN_BELOW"]

#: A float32 draw of a family with a ``TfpFamily.widen`` parameter below this runs in float64.
#: Its derivatives overflow float32 from about 1e-19 (``1 / h**2`` passes the largest float;
#: NaN gradients on both substrates: Gamma, Beta, Dirichlet, InverseGamma, FisherSnedecor,
#: StudentT, Kumaraswamy, VonMises); below 1e-12 the float64 draw costs nothing that matters.
WIDEN_BELOW = 1e-12

Builder = Callable[[Any, Mapping[str, Any], tuple[Any, ...]], Any]
Drawer = Callable[[Any, Mapping[str, Any], tuple[Any, ...], tuple[int, ...], Any], Any]
Scorer = Callable[[Any, Mapping[str, Any], tuple[Any, ...], Any], Any]


@dataclass(frozen=True)
class TfpFamily:
    """How one torch family runs on TFP.

    Attributes:
        inputs: canonical torch parameters handed to the substrate (tensors).
        static: canonical integer parameters baked into the compiled program (Python ints).
        draw_static: those of the draw programs, where they differ from ``static``
            (Multinomial's draws read ``total_count`` as an input: one program serves every
            count, where a program per count cost a compilation each).
        build: ``build(tfp, params, static) -> tfd.Distribution``; ``None`` for composed families.
        draw: ``draw(tfp, params, static, sample_shape, seed)`` for composed families.
        rsample: pathwise gradients offered.
        log_prob: TFP scores it (False: the core scores with torch).
        post: torch-side step applied to the substrate's draw (composed families;
            ``"exp"``: LogNormal, whose subnormal values XLA flushes to zero).
        note: shown in ``polysample backends`` and the docs.
        tf_static_rows: TFP on TensorFlow cannot draw it with an unknown batch dimension, so
            its shape-bucket programs are traced once per bucket (see
            ``TfSubstrate.rows_polymorphic``).
        draw_inputs: the parameters the draws read when they differ from ``inputs`` (draws
            read ``probs``: torch's ``logits`` made from probabilities are clamped to about
            -15.9 in float32, so an outcome of probability exactly 0 would be drawn).
        clamp: torch-side clamp of the draw into the open support, as torch's samplers clamp
            (straight-through, so gradients flow): ``"positive"`` (at least ``finfo.tiny``),
            ``"positive_finite"`` (in ``[tiny, finfo.max]``), ``"unit"`` (in ``[tiny, 1 - eps/2]``), ``"simplex"`` (``tiny`` and rows
            renormalized).
        score: ``score(tfp, params, static, value) -> log_prob`` where ``build(...).log_prob``
            disagrees with torch (``None``: TFP's own ``log_prob``).
        score_inputs: the parameters ``score`` reads when they differ from ``inputs``.
        draw_flags: ``draw_flags(params) -> tuple`` of Python values computed on the host from
            the torch parameters and appended to ``static`` for the draw program (which is then
            specialised to them): e.g. whether a Binomial count exceeds 2**50, so that programs
            of ordinary counts do not compile the limit laws.
        flags_on: the substrates whose draw programs use ``draw_flags`` (on the others the
            flags are not computed, so they make no second program).
        full_optimization: its exact programs keep XLA's default optimisation (LLVM -O3)
            instead of -O2 (see ``substrates.compiler_options``): the families drawn through
            TFP's Poisson sampler, which ran 10-15% slower at -O2.
        widen: parameters below :data:`WIDEN_BELOW` of which make a float32 draw run in
            float64, rounded to float32 afterwards (see ``backend._narrow``): derivatives such
            as ``log(U) / h**2`` overflow float32 there and the gradients were NaN.
        in_float64: every float32 draw runs in float64, rounded to float32 afterwards: TFP's
            float32 sampler is wrong (LKJCholesky: factors with a zero diagonal entry, see
            docs/conformance.md, finding F9).
        wide_score: shape parameters above :data:`WIDE_SCORE_ABOVE` of which make a float32
            ``log_prob`` run in float64, rounded back (checked on the host): TFP's log-gamma
            normalisers cancel in float32 there (``Gamma(1e8, 1e8).log_prob(1)`` was 0, it
            is 8.29; ``Chi2(1e8).log_prob(1e8)`` -64, it is -10.48: an outside trial).
        chunked: on JAX, draws of more rows than a chunk holds run in chunks of one program
            (``backend.CHUNK_ELEMENTS``): the families whose chunked draws took at most the
            exact program's time (TFP's rejection samplers, 0.63-0.96 times it, measured in
            docs/backends/tfp.md); the others' per-row parameters cost 1.2-3.2 times, and on
            TensorFlow every family's did (1.7-3.9 times).
    """

    inputs: tuple[str, ...]
    build: Builder | None = None
    draw: Drawer | None = None
    static: tuple[str, ...] = ()
    draw_static: tuple[str, ...] | None = None
    rsample: bool = True
    log_prob: bool = True
    post: str = ""
    note: str = ""
    tf_static_rows: bool = False
    draw_inputs: tuple[str, ...] | None = None
    clamp: str = ""
    full_optimization: bool = False
    score: Scorer | None = None
    score_inputs: tuple[str, ...] | None = None
    draw_flags: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = None
    flags_on: tuple[str, ...] = ("jax", "tensorflow")
    widen: tuple[str, ...] = ()
    in_float64: bool = False
    chunked: bool = False
    wide_score: tuple[str, ...] = ()

    @property
    def sample_inputs(self) -> tuple[str, ...]:
        """The parameters a draw reads."""
        return self.inputs if self.draw_inputs is None else self.draw_inputs

    @property
    def sample_static(self) -> tuple[str, ...]:
        """The parameters baked into a draw program."""
        return self.static if self.draw_static is None else self.draw_static

    @property
    def log_prob_inputs(self) -> tuple[str, ...]:
        """The parameters ``log_prob`` reads."""
        return self.inputs if self.score_inputs is None else self.score_inputs

    def log_prob_of(self, tfp: Any, params: Mapping[str, Any], static: tuple[Any, ...],
                    value: Any) -> Any:
        """The log density of ``value`` (inside the compiled ``log_prob`` program)."""
        if self.score is not None:
            return self.score(tfp, params, static, value)
        return self.build(tfp, params, static).log_prob(value)  # type: ignore[misc]


def _d(name: str, *args: str, **fixed: Any) -> Builder:
    """A builder calling ``tfd.<name>`` with torch params ``args`` mapped to TFP keywords.

    ``args`` entries are ``"tfp_kw=torch_name"`` or ``"name"`` (same name on both sides).
    """
    pairs = [a.split("=") if "=" in a else (a, a) for a in args]

    def build(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...]) -> Any:
        kw = {k: p[v] for k, v in pairs}
        extra = {k: (v(p) if callable(v) else v) for k, v in fixed.items()}
        return getattr(tfp.distributions, name)(**kw, **extra)

    return build


def _dtype_of(name: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda p: p[name].dtype


def _relaxed_one_hot(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...]) -> Any:
    # torch divides (logits + gumbel) by temperature broadcast against batch + event shape, so a
    # batch of temperatures has a trailing 1 there; TFP's temperature has the batch shape.
    t = p["temperature"]
    if t.ndim >= 1:
        if t.shape[-1] != 1:
            raise ValueError(
                "per-category temperatures (temperature's last dimension "
                f"{t.shape[-1]} != 1) have no TFP counterpart; use backend='torch'")
        t = t[..., 0]
    return tfp.distributions.RelaxedOneHotCategorical(t, logits=p["logits"])


def _small_df(p: Mapping[str, Any]) -> tuple[bool]:
    """Whether some FisherSnedecor degree of freedom is below 1/2 (on the host): its Gammas'
    concentrations are then below 1/4, where a draw underflows with probability above
    ``tiny**(1/4)`` (3e-10 in float32). From 1/2 to 1 TFP's own ratio is kept: flagging there
    made the conformance suite's corner (degrees of freedom 0.5) compile every gradient
    program twice (the FisherSnedecor statistical test 34 s cold, was 18 s)."""
    return (bool((p["df1"] < 0.5).any() or (p["df2"] < 0.5).any()),)


def _fisher_snedecor(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                     shape: tuple[int, ...], seed: Any) -> Any:
    # F = (X1/d1) / (X2/d2) with Xi ~ Chi2(di), i.e. Xi/di ~ Gamma(di/2, rate=di/2). TFP's Gamma
    # is implicitly reparameterized, so the ratio carries pathwise gradients in df1 and df2.
    s1, s2 = tfp.random.split_seed(seed, n=2)
    h1, h2 = p["df1"] / 2, p["df2"] / 2
    if static and static[-1]:
        return _fisher_snedecor_log_space(tfp, h1, h2, shape, s1, s2)
    g1 = _gamma_sample(tfp, h1, h1, shape, s1)
    g2 = _gamma_sample(tfp, h2, h2, shape, s2)
    return g1 / g2


def _fisher_snedecor_log_space(tfp: Any, h1: Any, h2: Any, shape: tuple[int, ...], s1: Any,
                               s2: Any) -> Any:
    """FisherSnedecor with a degree of freedom below 1/2: ``log F = log G1 - log G2 +
    log(h2 / h1)`` from :func:`_log_standard_gamma`. TensorFlow's Gamma draws of such small
    concentrations underflow to the smallest float, both at once often, and their ratio was then
    exactly 1: for 42% of float32 draws of ``FisherSnedecor(0.01, 0.01)`` and 49% of float64
    ones at 0.001; on JAX the ratio's gradient was NaN (from 0.1 in float32)."""
    tf = _tf(tfp)
    log_x = (_log_standard_gamma(tfp, h1, shape, s1) - _log_standard_gamma(tfp, h2, shape, s2)
             + tf.math.log(h2) - tf.math.log(h1))
    return _exp_in_range(tf, log_x)


def _log_standard_gamma(tfp: Any, h: Any, shape: tuple[int, ...], seed: Any) -> Any:
    """``log G``, ``G ~ Gamma(h, 1)`` (``shape + h.shape`` of them), as ``log G_(h+1) +
    log(U) / h``: exact (``G_h = G_(h+1) U^(1/h)``) and finite for every ``h > 0``, where a
    draw of ``G_h`` itself underflows to 0 (Gamma(0.05) in float32: 1.2% of the draws) and
    TFP's pathwise gradient of such a draw is NaN on both substrates. Pathwise in ``h``
    through both terms; ``G_(h+1)``, of concentration above 1, never underflows."""
    tf = _tf(tfp)
    samplers = _samplers(tfp)
    sg, su = samplers.split_seed(seed, n=2, salt="polysample_log_gamma")
    # (its own gradient: a Beta's or a Dirichlet's other concentrations, drawn here too, may
    # be large, where JAX's gradient is wrong and slow)
    g = _gamma_sample(tfp, h + 1, tf.ones_like(h), shape, sg, own_gradient=True)
    static_shape = tuple(g.shape)  # JAX: always known; TensorFlow: None in row buckets
    u = samplers.uniform(tf.shape(g) if None in static_shape else static_shape,
                         dtype=g.dtype, seed=su)
    return tf.math.log(g) + tf.math.log1p(-u) / h


def _exp_in_range(tf: Any, log_x: Any) -> Any:
    """``exp(log_x)`` held in ``[tiny, max]`` of its dtype. The upper bound is a little below
    ``log(max)``: ``exp`` of that rounded to the dtype is ``inf`` in float32, and a cotangent
    that flushes to zero (XLA flushes subnormals) times ``inf`` made the gradient NaN."""
    info = np.finfo(getattr(log_x.dtype, "as_numpy_dtype", log_x.dtype))
    hi = float(np.log(info.max)) * (1 - 4 * float(info.eps))
    return tf.exp(tf.clip_by_value(log_x, float(np.log(info.tiny)), hi))


def _gamma_flags(p: Mapping[str, Any]) -> tuple[bool, bool]:
    """Gamma's ``draw_flags`` on JAX: a concentration below 1/2 (drawn in log space, see
    :func:`_small_concentration`) and one above :data:`WILSON_HILFERTY_MIN` (the draw then
    carries polysample's gradient, :func:`_f64_gradient`: JAX's was wrong there)."""
    c = p["concentration"]
    return bool((c < 0.5).any()), bool((c > WILSON_HILFERTY_MIN).any())


def _small_concentration(*names: str) -> Callable[[Mapping[str, Any]], tuple[bool]]:
    """``draw_flags``: whether some of the parameters ``names`` is below 1/2 (on the host): the
    draws are then made from :func:`_log_standard_gamma`. A Gamma(α) draw underflows with
    probability about ``tiny**α``: in float32 1e-19 at 1/2, 1e-4 at 0.1 (1.2e-2 at 0.05); in
    float64 1e-3 at 0.01. (FisherSnedecor's degrees of freedom below 1 are the same bound:
    they are twice its Gammas' concentrations.)"""

    def flags(p: Mapping[str, Any]) -> tuple[bool]:
        return (any(bool((p[n] < 0.5).any()) for n in names),)
    return flags


def _beta(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
          shape: tuple[int, ...], seed: Any) -> Any:
    a, b = p["concentration1"], p["concentration0"]
    if not (static and static[-1]):
        return tfp.distributions.Beta(a, b).sample(shape, seed=seed)
    # TFP draws log-space Gammas too, but their pathwise gradient divides by the Gamma draw
    # itself, NaN where it underflows (Beta(0.05, 0.05) in float32: 2% of the draws)
    s1, s2 = tfp.random.split_seed(seed, n=2)
    tf = _tf(tfp)
    return tf.math.sigmoid(_log_standard_gamma(tfp, a, shape, s1)
                           - _log_standard_gamma(tfp, b, shape, s2))



def _student_t(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
               shape: tuple[int, ...], seed: Any) -> Any:
    """TFP's StudentT; with ``df`` below 1/2 (``draw_flags``), ``loc + scale z sqrt(h / G_h)``
    (``h = df / 2``) from :func:`_log_standard_gamma`. TFP's chi2 draw underflows there, and its
    pathwise gradient was NaN on JAX (float32 ``df = 0.1``). The exponent of ``scale
    sqrt(h / G_h)`` is capped so that the product with ``z`` stays 1% below the dtype's largest
    float (a zero gradient there, as :func:`_exp_in_range`)."""
    df, loc, scale = p["df"], p["loc"], p["scale"]
    if not (static and static[-1]):
        return tfp.distributions.StudentT(df, loc, scale).sample(shape, seed=seed)
    tf = _tf(tfp)
    samplers = _samplers(tfp)
    sz, sg = samplers.split_seed(seed, n=2, salt="polysample_student_t")
    # every batch element its own noise: df broadcast to the parameters' batch shape
    h = (df + tf.zeros_like(loc) + tf.zeros_like(scale)) / 2
    log_g = _log_standard_gamma(tfp, h, shape, sg)
    static_shape = tuple(log_g.shape)
    z = samplers.normal(tf.shape(log_g) if None in static_shape else static_shape,
                        dtype=log_g.dtype, seed=sz)
    info = np.finfo(getattr(log_g.dtype, "as_numpy_dtype", log_g.dtype))
    # |z| scale sqrt(h / G_h) as one exp, capped 1% below the largest float: no product rounds
    # to inf (a zero cotangent times inf made the gradients NaN)
    log_abs = (tf.math.log(tf.maximum(tf.abs(z), float(info.tiny))) + tf.math.log(scale)
               + 0.5 * (tf.math.log(h) - log_g))
    y = tf.sign(z) * tf.exp(tf.minimum(log_abs, float(np.log(info.max)) - 0.01))
    return tf.clip_by_value(loc + y, -float(info.max), float(info.max))

def _dirichlet(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
               shape: tuple[int, ...], seed: Any) -> Any:
    conc = p["concentration"]
    # TFP refuses one category ("event_size at least 2"); the one point of that simplex, 1, is
    # what the log-space path's softmax gives (with a zero gradient, as torch's).
    if not (static and static[-1]) and conc.shape[-1] != 1:
        return tfp.distributions.Dirichlet(conc).sample(shape, seed=seed)
    tf = _tf(tfp)
    return tf.math.softmax(_log_standard_gamma(tfp, conc, shape, seed), axis=-1)


def _lkj(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...]) -> Any:
    return tfp.distributions.CholeskyLKJ(dimension=static[0], concentration=p["concentration"])


def _lkj_onion(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
               shape: tuple[int, ...], seed: Any) -> Any:
    """LKJ Cholesky factors by the onion method, from log-space Beta draws.

    Row ``i >= 1`` is ``(sqrt(y) u, sqrt(1 - y))`` with ``u`` uniform on the sphere of
    dimension ``i`` and ``y ~ Beta(i/2, eta + (d - 1 - i)/2)``, ``y = sigmoid(log G_a - log G_b)``
    and ``1 - y = sigmoid(log G_b - log G_a)`` (:func:`_log_standard_gamma`: no underflow, no
    cancellation). TFP 0.25's ``CholeskyLKJ`` takes the diagonal from ``1 - |w|^2``: at small
    concentrations, where most of the law lies within a float's spacing of singular factors,
    its last diagonal entry was exactly 0 (outside the support) for 2% of the draws at
    concentration 0.1 and 96% at 1e-3 (finding F6). Here the diagonal is held at the dtype's
    smallest normal float, as torch's sampler holds it."""
    tf = _tf(tfp)
    dim = int(static[0])
    conc = p["concentration"]
    np_dtype = getattr(conc.dtype, "as_numpy_dtype", conc.dtype)
    row = np.arange(dim)
    # row 0 is (1, 0, ...): its Beta parameters are placeholders, its draw is not read; the
    # integer part of the second parameter is added first, so the last row's is eta itself
    b = tf.expand_dims(conc, -1) + tf.constant(((dim - 2) - np.maximum(row - 1, 0)) / 2,
                                               dtype=conc.dtype)
    a = tf.constant(np.maximum(row / 2, 0.5), dtype=conc.dtype) + tf.zeros_like(b)
    s1, s2, s3 = _samplers(tfp).split_seed(seed, n=3, salt="polysample_lkj")
    log_a = _log_standard_gamma(tfp, a, shape, s1)
    log_b = _log_standard_gamma(tfp, b, shape, s2)
    z = _samplers(tfp).normal(list(shape) + list(b.shape) + [dim], dtype=conc.dtype, seed=s3)
    z = tf.linalg.band_part(z, -1, 0) - tf.linalg.band_part(z, 0, 0)  # strictly lower
    u = tf.math.divide_no_nan(z, tf.norm(z, axis=-1, keepdims=True))  # row 0: 0
    w = tf.expand_dims(tf.exp(0.5 * tf.math.log_sigmoid(log_a - log_b)), -1) * u
    diag = tf.maximum(tf.exp(0.5 * tf.math.log_sigmoid(log_b - log_a)),
                      tf.constant(np.finfo(np_dtype).tiny, dtype=conc.dtype))
    diag = tf.where(tf.constant(row == 0), tf.ones_like(diag), diag)
    return w + tf.linalg.diag(diag)


def _multinomial(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...]) -> Any:
    return tfp.distributions.Multinomial(total_count=float(static[0]), logits=p["logits"])


def _half_cauchy(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...]) -> Any:
    scale = p["scale"]
    return tfp.distributions.HalfCauchy(loc=scale * 0, scale=scale)


def _tf(tfp: Any) -> Any:
    """The TensorFlow-like module of ``tfp``'s substrate (TensorFlow, or TFP's JAX port)."""
    if tfp.__name__.endswith(".jax"):
        return importlib.import_module("tensorflow_probability.python.internal.backend.jax.v2")
    return importlib.import_module("tensorflow")


def _samplers(tfp: Any) -> Any:
    """TFP's stateless samplers module of ``tfp``'s substrate."""
    if tfp.__name__.endswith(".jax"):
        return importlib.import_module(tfp.__name__ + ".internal.samplers")
    return importlib.import_module("tensorflow_probability.python.internal.samplers")


def _inverse_cdf(tfp: Any, probs: Any, shape: tuple[int, ...], seed: Any) -> Any:
    """Indices drawn from the rows of ``probs`` (``batch + (K,)``), ``shape + batch`` of them.

    Inversion in float64: one cumulative sum per batch row, one uniform per draw, a binary
    search each. Memory grows with ``draws + batch * K`` (TFP's Categorical makes a
    ``draws * K`` array of Gumbel noise: 2.6 GB for 1e3 draws of 1e5 categories), and a
    category of probability exactly 0 is never drawn: its interval of the CDF is empty.
    """
    tf = _tf(tfp)
    # An index has no gradient: the straight-through families add theirs on the torch side, and
    # JAX cannot differentiate nextafter.
    p = tf.stop_gradient(tf.cast(probs, tf.float64))
    cdf = tf.math.cumsum(p, axis=-1)
    total = cdf[..., -1:]
    static = list(p.shape[:-1])
    rank = len(static)
    # A TensorFlow graph traced for every bucket size has an unknown row dimension (None).
    batch: Any = static if None not in static else tf.shape(p)[:-1]
    n = 1
    for s in shape:
        n *= s
    u_shape = static + [n] if batch is static else tf.concat([batch, [n]], 0)
    u = _samplers(tfp).uniform(u_shape, dtype=tf.float64, seed=seed)
    # u * total < total, so the last category of positive probability is the largest drawn
    # (trailing zeros share its CDF value): rounding could reach total itself.
    v = tf.minimum(u * total, tf.math.nextafter(total, tf.zeros_like(total)))
    idx = tf.searchsorted(cdf, v, side="right", out_type=tf.int64)  # batch + (n,)
    idx = tf.transpose(idx, [rank] + list(range(rank)))  # (n,) + batch
    if batch is static:
        return tf.reshape(idx, list(shape) + static)
    return tf.reshape(idx, tf.concat([tf.constant(list(shape), tf.int32), batch], 0))


def _categorical(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                 shape: tuple[int, ...], seed: Any) -> Any:
    return _inverse_cdf(tfp, p["probs"], shape, seed)


def _one_hot(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
             shape: tuple[int, ...], seed: Any) -> Any:
    tf = _tf(tfp)
    probs = p["probs"]
    idx = _inverse_cdf(tfp, probs, shape, seed)
    return tf.one_hot(idx, probs.shape[-1], dtype=probs.dtype)


def _bernoulli(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
               shape: tuple[int, ...], seed: Any) -> Any:
    probs = p["probs"]
    return tfp.distributions.Bernoulli(probs=probs, dtype=probs.dtype).sample(shape, seed=seed)


def _in_float64_score(score: Scorer) -> Scorer:
    """``score`` computed on float64 copies of the parameters and value, rounded back to the
    value's dtype. TFP scores the count families as differences of log-gammas, which cancel in
    float32 at large counts: ``Binomial(1e9, 0.5).log_prob(5e8)`` was 0 (it is -10.59),
    ``Poisson(1e9).log_prob(1e9)`` -1280 (-11.28) (an outside trial)."""

    def wide(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
        tf = _tf(tfp)
        dtype = value.dtype
        cast = {k: tf.cast(v, tf.float64) if _floating(v) else v for k, v in p.items()}
        return tf.cast(score(tfp, cast, static, tf.cast(value, tf.float64)), dtype)

    return wide


def _floating(v: Any) -> bool:
    """Whether ``v`` is an array of a floating dtype (TensorFlow's or NumPy's dtype objects)."""
    dtype = getattr(v, "dtype", None)
    if dtype is None:
        return False
    return bool(np.issubdtype(np.dtype(getattr(dtype, "as_numpy_dtype", dtype)), np.floating))


def _tfp_score(name: str, *args: str) -> Scorer:
    """TFP's own ``log_prob`` of ``tfd.<name>`` as a ``score`` function."""
    build = _d(name, *args)
    return lambda tfp, p, static, value: build(tfp, p, static).log_prob(value)


def _binomial_f64(tfp: Any, count: Any, probs: Any, shape: tuple[int, ...], seed: Any,
                  large: bool) -> Any:
    """Binomial(count, probs) draws in float64 (``shape`` + the parameters' broadcast shape).

    TFP's float64 sampler loses accuracy beyond :data:`~polysample.backends._math.LARGE_COUNT`
    (2**50; the variance 1.06 times the law's at 1e17, 4 times at 1e19, 2.5 times at
    ``Binomial(1e18, 1e-12)``): there the limit laws of the torch and numpy backends are drawn
    (``N(nq, nq(1-q))`` rounded, or ``Poisson(nq)``, with ``q = min(p, 1 - p)``, mirrored for
    ``p > 1/2`` and clipped to ``[0, n]``), from seeds derived from the call's. Counts at or
    below 2**50 are TFP's own draws (same seed, same values as before). ``large``: some count
    may be above 2**50 (decided on the host, :func:`_huge_count`); otherwise the program has no
    limit laws to compile (they tripled the compile time of every Binomial program).
    """
    tf = _tf(tfp)
    tfd = tfp.distributions
    small = tfd.Binomial(total_count=tf.minimum(count, LARGE_COUNT),
                         probs=probs).sample(shape, seed=seed)

    def limit_laws() -> Any:
        s_normal, s_poisson = _samplers(tfp).split_seed(seed, n=2, salt="polysample_binomial")
        zero = tf.zeros_like(small)
        n, p = count + zero, probs + zero
        q = tf.minimum(p, 1.0 - p)
        mean = n * q
        var = mean * (1.0 - q)
        full = list(small.shape) if None not in small.shape else tf.shape(small)
        z = _samplers(tfp).normal(full, dtype=tf.float64, seed=s_normal)
        normal = tf.round(mean + tf.sqrt(var) * z)
        poisson = tfd.Poisson(rate=tf.minimum(mean, LARGE_RATE)).sample(seed=s_poisson)
        y = tf.where(var >= LARGE_BINOMIAL_VARIANCE, normal, poisson)
        y = tf.minimum(tf.maximum(y, 0.0), n)
        y = tf.where(p > 0.5, n - y, y)
        return tf.where(n > LARGE_COUNT, y, small)

    return limit_laws() if large else small


def _continuous_bernoulli(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                          shape: tuple[int, ...], seed: Any) -> Any:
    """TFP's draw (its inverse CDF at a uniform), except where ``|logits|`` is below
    :data:`~polysample.core.torch_fixes.CB_SERIES`: TFP 0.25 returns the uniform itself at
    ``logits == 0``, whose gradient is 0 (the expected one at ``probs = 1/2`` is 1/3; finding
    F14). There the Taylor series ``u + u (1 - u) s / 2 (1 + (1 - 2u) s / 3)``."""
    tf = _tf(tfp)
    s = p["logits"]
    u = _samplers(tfp).uniform(_draw_shape(tf, shape, s), dtype=s.dtype, seed=seed)
    small = tf.abs(s) < CB_SERIES
    safe = tf.where(small, tf.ones_like(s), s)
    exact = tfp.distributions.ContinuousBernoulli(logits=safe, dtype=s.dtype).quantile(u)
    series = u + u * (1 - u) / 2 * s * (1 + (1 - 2 * u) / 3 * s)
    return tf.where(small, series, exact)


def _kumaraswamy(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                 shape: tuple[int, ...], seed: Any) -> Any:
    """``(1 - (1 - u)^(1/b))^(1/a)`` computed in logs: ``exp(log(-expm1(log1p(-u) / b)) / a)``.

    TFP 0.25 computes ``(1 - u)^(1/b)`` itself, which rounds to 1 once ``-log(1 - u) / b`` is
    below the dtype's spacing: the draw is then 0 (held at ``tiny``) where the law lies just
    below 1 (float32 concentrations of 1e4: a few draws in 10,000; 1e8: 95%; float64 1e17:
    99.6%). Gradients are the inverse CDF's, as TFP's."""
    tf = _tf(tfp)
    a, b = p["concentration1"], p["concentration0"]
    a, b = a + tf.zeros_like(b), b + tf.zeros_like(a)
    u = _samplers(tfp).uniform(_draw_shape(tf, shape, a), dtype=a.dtype, seed=seed)
    return tf.exp(tf.math.log(-tf.math.expm1(tf.math.log1p(-u) / b)) / a)


def _reduced_loc(tf: Any, loc: Any) -> Any:
    """``loc`` reduced to ``[-pi, pi)`` in float64 where it lies outside ``[-pi, pi]`` (torch
    adds ``loc`` to its draws in float64). TFP adds it in the parameters' dtype and wraps with
    ``round(x / 2 pi)``: at ``loc = 1e30`` (float64) every draw was 1.5e13, outside the
    support, and at ``1e8`` (float32) every draw the same value. Gradient 1, as ``loc``'s."""
    l64 = tf.cast(loc, tf.float64)
    reduced = tf.math.floormod(l64 + np.pi, 2.0 * np.pi) - np.pi
    return tf.where(tf.abs(l64) > np.pi, tf.cast(reduced, loc.dtype), loc)


def _large_concentration(p: Mapping[str, Any]) -> tuple[bool]:
    """Whether a VonMises concentration exceeds the normal limit's threshold (on the host)."""
    return (bool((p["concentration"] > VON_MISES_NORMAL_LIMIT).any()),)


def _von_mises(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
               shape: tuple[int, ...], seed: Any) -> Any:
    """TFP's VonMises, and beyond :data:`VON_MISES_NORMAL_LIMIT` its normal limit.

    TFP 0.25's float32 sampler returns ``loc`` itself for every draw from about 1e8 on (the
    spread should be 1e-4 and less) and NaN from 1e19; its float64 one ``loc`` itself at 1e17
    and NaN at 1e300. Where some
    concentration is that large (``static[-1]``, decided on the host) those elements are drawn
    as ``loc + z / sqrt(concentration)`` wrapped to ``[-pi, pi]`` from a seed derived from the
    call's (gradients: ``dx/dloc = 1``, ``dx/dconcentration = -z / (2 concentration^1.5)``, the
    limits of TFP's implicit ones), and TFP draws the others with a concentration of 1 there
    (so no NaN reaches a gradient through ``where``). Otherwise the program is TFP's alone.
    """
    tfd = tfp.distributions
    tf = _tf(tfp)
    loc, conc = _reduced_loc(tf, p["loc"]), p["concentration"]
    if loc.dtype == tf.float32:
        # TFP's float32 sampler returns loc itself for every draw within about 4.9e-4 of it
        # (its cosine rounds to 1): an atom of 3.4e-4 of the mass at concentration 2.25, where
        # the law puts none. Drawn in float64 and rounded, with gradients through the casts.
        x = _von_mises(tfp, {"loc": tf.cast(loc, tf.float64),
                             "concentration": tf.cast(conc, tf.float64)}, static, shape, seed)
        return tf.cast(x, tf.float32)
    if not static[-1]:
        return tfd.VonMises(loc, conc).sample(shape, seed=seed)
    s_small, s_normal = _samplers(tfp).split_seed(seed, n=2, salt="polysample_von_mises")
    large = conc > VON_MISES_NORMAL_LIMIT
    one = tf.ones_like(conc)
    small = tfd.VonMises(loc, tf.where(large, one, conc)).sample(shape, seed=s_small)
    full = list(small.shape) if None not in small.shape else tf.shape(small)
    z = _samplers(tfp).normal(full, dtype=small.dtype, seed=s_normal)
    x = loc + z * tf.math.rsqrt(tf.where(large, conc, one))
    two_pi = 2.0 * np.pi
    x = x - two_pi * tf.round(x / two_pi)
    return tf.where(large, x, small)


#: A draw program is specialised to hold draws past the float range (``_may_overflow``) where
#: the probability that one draw leaves it exceeds ``exp(-OVERFLOW_LOG_ODDS)`` (6e-16).
OVERFLOW_LOG_ODDS = 35.0


def _may_overflow(log_odds: Callable[..., Any]) -> Callable[[Mapping[str, Any]], tuple[bool]]:
    """``draw_flags``: whether a draw may leave the float range (on the host).

    ``log_odds(p, log_max, log_tiny)`` bounds minus the log of the probability that one draw
    passes the largest float (or, for Weibull, falls below the smallest normal one), elementwise
    from the torch parameters ``p``; calls where it is at least ``OVERFLOW_LOG_ODDS`` everywhere
    keep TFP's own sampler."""

    def flags(p: Mapping[str, Any]) -> tuple[bool]:
        info = torch.finfo(p["scale"].dtype)
        with torch.no_grad():
            odds = log_odds(p, math.log(info.max), math.log(info.tiny))
        return (bool((odds < OVERFLOW_LOG_ODDS).any()),)

    return flags


def _gpd_log_odds(p: Mapping[str, Any], log_max: float, log_tiny: float) -> Any:
    # xi > 0 only: a negative concentration bounds the support
    xi = p["concentration"]
    safe = torch.where(xi > 0, xi, torch.ones_like(xi))
    return torch.where(xi > 0, (log_max - p["scale"].log() + safe.log()) / safe,
                       torch.full_like(safe, math.inf))


def _std_exponential(tfp: Any, params: Sequence[Any], shape: tuple[int, ...], seed: Any) -> Any:
    """Standard exponential noise of shape ``shape + broadcast(params)``, as ``-log1p(-u)`` from
    TFP's stateless uniform, at least ``tiny`` (a log of it stays finite)."""
    tf = _tf(tfp)
    zero = sum(tf.zeros_like(q) for q in params)
    static_shape = (*shape, *zero.shape)
    full = tf.concat([tf.constant(shape, tf.int32), tf.shape(zero)], 0) \
        if None in static_shape else static_shape
    u = _samplers(tfp).uniform(full, dtype=zero.dtype, seed=seed)
    info = np.finfo(getattr(zero.dtype, "as_numpy_dtype", zero.dtype))
    return tf.maximum(-tf.math.log1p(-u), float(info.tiny)) + zero


def _lognormal_log(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                   shape: tuple[int, ...], seed: Any) -> Any:
    """The logarithm of a LogNormal draw: TFP's ``LogNormal`` draws ``exp`` of this normal
    draw with the same seed (the torch side takes the ``exp``, ``post="exp"``)."""
    return tfp.distributions.Normal(p["loc"], p["scale"]).sample(shape, seed=seed)


def _relaxed_bernoulli(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                       shape: tuple[int, ...], seed: Any) -> Any:
    """``sigmoid((logits + L) / temperature)`` of standard logistic noise ``L = log(u) -
    log(1 - u)``, as torch draws it. TFP's own RelaxedBernoulli (a sigmoid bijector on a
    Logistic) gave NaN gradients on TensorFlow at temperatures of 0.05 and below, where the
    sigmoid saturates at exactly 0 or 1 (an outside trial); the torch-side ``unit`` clamp then
    keeps the values inside (0, 1), as torch's ``clamp_probs`` does."""
    tf = _tf(tfp)
    logits, temperature = p["logits"], p["temperature"]
    zero = tf.zeros_like(logits) + tf.zeros_like(temperature)
    static_shape = (*shape, *zero.shape)
    full = tf.concat([tf.constant(shape, tf.int32), tf.shape(zero)], 0) \
        if None in static_shape else static_shape
    info = np.finfo(getattr(zero.dtype, "as_numpy_dtype", zero.dtype))
    u = tf.maximum(_samplers(tfp).uniform(full, dtype=zero.dtype, seed=seed), float(info.tiny))
    noise = tf.math.log(u) - tf.math.log1p(-u)
    return tf.math.sigmoid((logits + noise) / temperature)


def _held_in_range(tfp: Any, fn: Callable[..., Any], params: Sequence[Any], lo: float,
                   hi: float) -> Any:
    """``fn(*params)`` (elementwise on fixed noise) held in ``[lo, hi]``, with a zero gradient
    (never NaN or infinite) where it left the range: those entries are recomputed with every
    parameter set to 1 (the "double where"), as ``_math.in_range`` does on the torch side."""
    tf = _tf(tfp)
    x0 = tf.stop_gradient(fn(*params))
    out = tf.logical_not((x0 >= lo) & (x0 <= hi))
    one = tf.ones_like(x0)
    safe = [tf.where(out, one, q) for q in params]
    return tf.where(out, tf.clip_by_value(x0, lo, hi), fn(*safe))


def _gpd_from_exponential(tf: Any, e: Any, loc: Any, scale: Any, xi: Any) -> Any:
    # xi = 0: the limit loc + scale e (xi replaced by 1 there, then selected away)
    nz = tf.not_equal(xi, 0)
    safe = tf.where(nz, xi, tf.ones_like(xi))
    return loc + scale * tf.where(nz, tf.math.expm1(safe * e) / safe, e)


def _overflow_drawer(build: Builder, names: tuple[str, ...], transform: Callable[..., Any],
                     positive: bool = False) -> Drawer:
    """TFP's own sampler (``build``), or, where ``_may_overflow`` flags the call,
    ``transform(tf, e, *params)`` of standard exponential noise ``e``, with the draws past the
    float range (``positive``: also below its smallest normal number) held at its end with a
    zero gradient. TFP 0.25 returned ``inf`` there with NaN gradients (Pareto,
    GeneralizedPareto), or infinite gradients at the torch-side clamp (Weibull)."""

    def draw(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
             shape: tuple[int, ...], seed: Any) -> Any:
        if not static[-1]:
            return build(tfp, p, static).sample(shape, seed=seed)
        tf = _tf(tfp)
        params = tuple(p[n] for n in names)
        e = _std_exponential(tfp, params, shape, seed)
        info = np.finfo(getattr(e.dtype, "as_numpy_dtype", e.dtype))
        lo = float(info.tiny) if positive else -float(info.max)
        return _held_in_range(tfp, lambda *q: transform(tf, e, *q), params, lo, float(info.max))

    return draw


_PARETO = _d("Pareto", "concentration=alpha", "scale")
_GENERALIZED_PARETO = _d("GeneralizedPareto", "loc", "scale", "concentration")
_WEIBULL = _d("Weibull", "concentration", "scale")


_UNIFORM = _d("Uniform", "low", "high")


def _wide_span(p: Mapping[str, Any]) -> tuple[bool]:
    """Whether ``high - low`` overflows the dtype somewhere (the draw program's flag)."""
    return (not bool(torch.isfinite(p["high"] - p["low"]).all()),)


def _uniform(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
             shape: tuple[int, ...], seed: Any) -> Any:
    """TFP's Uniform; where ``high - low`` overflows (``Uniform(-3e38, 3e38)`` in float32 drew
    inf), TFP's Uniform of the halved bounds, doubled: the scaling by 2 is exact, so each value
    rounds as the plain formula's would where that one is finite."""
    if not static[-1]:
        return _UNIFORM(tfp, p, static).sample(shape, seed=seed)
    half = {"low": p["low"] * 0.5, "high": p["high"] * 0.5}
    return _UNIFORM(tfp, half, static).sample(shape, seed=seed) * 2.0


def _huge_count(p: Mapping[str, Any]) -> tuple[bool]:
    """Whether a Binomial count exceeds 2**50 (the draw program's flag, on the host)."""
    return (bool((torch.as_tensor(p["total_count"]) > LARGE_COUNT).any()),)


def _huge_rate(p: Mapping[str, Any]) -> tuple[bool]:
    """Whether a Poisson rate exceeds :data:`LARGE_RATE` (the draw program's flag, on the
    host)."""
    return (bool((torch.as_tensor(p["rate"]) > LARGE_RATE).any()),)


def _huge_mixture_rate(p: Mapping[str, Any]) -> tuple[bool]:
    """Whether a NegativeBinomial's gamma rates may exceed :data:`LARGE_RATE` (on the host):
    their mean ``total_count * exp(logits)`` above a thousandth of it (a Gamma draw beyond a
    thousand times its mean has probability below exp(-900))."""
    with torch.no_grad():
        mean = torch.as_tensor(p["total_count"]).double() * torch.as_tensor(p["logits"]).double().exp()
    return (bool((mean > LARGE_RATE / 1e3).any()),)


def _poisson_f64(tfp: Any, rate: Any, shape: tuple[int, ...], seed: Any, large: bool) -> Any:
    """Poisson(rate) draws in float64 (``shape`` + the rate's shape).

    TFP's sampler loses accuracy at large rates (the variance 1.01 times the law's at 1e13, 1.18
    at 1e15, 1.6-1.7 from 1e16 to 1e25): above :data:`LARGE_RATE` the normal limit with its
    skewness term of the torch and numpy backends is drawn
    (:func:`~polysample.backends._math.poisson_normal_limit`), from a seed derived from the
    call's. ``large``: some rate may be above it (decided on the host); otherwise the program is
    TFP's sampler alone (same seed, same values as before).
    """
    tf = _tf(tfp)
    if not large:
        return tfp.distributions.Poisson(rate=rate).sample(shape, seed=seed)
    small = tfp.distributions.Poisson(rate=tf.minimum(rate, LARGE_RATE)).sample(shape, seed=seed)
    s_normal = _samplers(tfp).split_seed(seed, n=1, salt="polysample_poisson")[0]
    full = list(small.shape) if None not in small.shape else tf.shape(small)
    z = _samplers(tfp).normal(full, dtype=tf.float64, seed=s_normal)
    r = rate + tf.zeros_like(small)
    normal = tf.maximum(tf.round(r + tf.sqrt(r) * z + (z * z - 1.0) / 6.0), 0.0)
    return tf.where(r > LARGE_RATE, normal, small)


def _poisson(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
             shape: tuple[int, ...], seed: Any) -> Any:
    """TFP's Poisson in float64, cast back to the rate's dtype (TFP's count samplers lose
    accuracy in float32 at large counts: ``Binomial(1e9, 0.3)`` drew a mean 9 standard errors
    off and a variance 27% too large), with the normal limit above :data:`LARGE_RATE`
    (:func:`_poisson_f64`)."""
    tf = _tf(tfp)
    rate = p["rate"]
    out = _poisson_f64(tfp, tf.cast(rate, tf.float64), shape, seed, large=static[-1])
    return tf.cast(out, rate.dtype)


def _binomial(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
              shape: tuple[int, ...], seed: Any) -> Any:
    # total_count is truncated as torch's sampler truncates it (torch.binomial: a non-integer
    # count given with validate_args=False draws from its floor).
    tf = _tf(tfp)
    probs = p["probs"]
    count = tf.floor(tf.cast(p["total_count"], tf.float64))
    out = _binomial_f64(tfp, count, tf.cast(probs, tf.float64), shape, seed, large=static[-1])
    return tf.cast(out, probs.dtype)


def _draw_shape(tf: Any, shape: tuple[int, ...], batch: Any) -> Any:
    """``shape + batch``: a list, or a tensor where a TensorFlow bucket program does not know
    its row dimension (``None``) when traced."""
    static = list(batch.shape)
    if None not in static:
        return list(shape) + static
    return tf.concat([tf.constant(list(shape), tf.int32), tf.shape(batch)], 0)


def _multinomial_draw(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                      shape: tuple[int, ...], seed: Any) -> Any:
    """Counts ``x_j ~ Binomial(n - x_0 - ... - x_(j-1), p_j / (p_j + ... + p_(k-1)))`` in
    float64 (:func:`_binomial_f64`), the last category taking the remainder, so each row sums
    to ``total_count`` exactly.

    TFP's ``Multinomial`` iterates binomials too, but casts ``total_count`` to int32 (2**40
    trials drew rows summing to 0 or less) and divides by ``1 - consumed`` (cancellation); the
    tails here are summed from the last category. A category of probability 0 has conditional
    probability 0, so its count is 0. A ``while_loop``, as TFP's, so the program does not grow
    with the number of categories.
    """
    tf = _tf(tfp)
    probs = p["probs"]
    p64 = tf.stop_gradient(tf.cast(probs, tf.float64))
    k = p64.shape[-1]
    tail = tf.math.cumsum(p64, axis=-1, reverse=True)  # p_j + ... + p_(k-1)
    cond = tf.clip_by_value(tf.math.divide_no_nan(p64, tail), 0.0, 1.0)
    seeds = tf.stack(_samplers(tfp).split_seed(seed, n=k, salt="polysample_multinomial"))
    # total_count is an input (one program for every count), whether it exceeds 2**50 a flag
    count = tf.floor(tf.cast(p["total_count"], tf.float64))
    rest = tf.zeros(_draw_shape(tf, shape, p64[..., 0]), tf.float64) + count
    accum = tf.TensorArray(tf.float64, size=k, element_shape=rest.shape)

    def step(i: Any, rest: Any, accum: Any) -> Any:
        x = _binomial_f64(tfp, rest, tf.gather(cond, i, axis=-1), (),
                          tf.gather(seeds, i, axis=0), large=static[-1])
        return i + 1, rest - x, accum.write(i, x)

    _, rest, accum = tf.while_loop(lambda i, *_: i < k - 1, step,
                                   (tf.constant(0), rest, accum))
    counts = accum.write(k - 1, rest).stack()  # (k,) + shape + batch
    rank = len(counts.shape)
    return tf.cast(tf.transpose(counts, list(range(1, rank)) + [0]), probs.dtype)


def _geometric(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
               shape: tuple[int, ...], seed: Any) -> Any:
    """Failures before the first success, ``floor(log(u) / log1p(-p))`` with ``u`` uniform in
    ``(0, 1]``, in float64 from ``probs`` (torch's sampler, in float64).

    TFP's sampler read torch's ``logits`` (clamped to about -15.9 in float32) and saturated:
    ``Geometric(probs=1e-300)`` in float64 drew a median of 3.2e15 (the law's: 6.9e299), in
    float32 ``probs=1e-10`` about 1e7 (the law's: 6.9e9). A float32 count beyond ``finfo.max``
    is ``inf``, as in torch; ``probs`` 1 gives 0, ``probs`` 0 ``inf``.
    """
    tf = _tf(tfp)
    probs = p["probs"]
    p64 = tf.stop_gradient(tf.cast(probs, tf.float64))
    u = 1.0 - _samplers(tfp).uniform(_draw_shape(tf, shape, p64), dtype=tf.float64, seed=seed)
    x = tf.floor(tf.math.log(u) / tf.math.log1p(-p64))
    x = tf.where(p64 >= 1, tf.zeros_like(x), x)
    x = tf.where(p64 > 0, x, tf.constant(np.inf, tf.float64))
    return tf.cast(x, probs.dtype)


def _negative_binomial(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                       shape: tuple[int, ...], seed: Any) -> Any:
    """NegativeBinomial as its gamma-Poisson mixture, in float64, from TFP's Gamma and Poisson.

    The law TFP's own sampler draws (and torch's), at a fraction of the time: on JAX, TFP's
    ``NegativeBinomial.sample`` took 9.4 s for 32768 draws of NB(100, 0.99) (its Poisson step
    with one rate per draw), the same mixture drawn from ``Gamma`` and ``Poisson`` 0.02 s.
    ``total_count`` 0 gives Gamma draws of 0 and so counts of 0, as in torch.
    """
    tf = _tf(tfp)
    dtype = p["logits"].dtype
    r = tf.cast(p["total_count"], tf.float64)
    logits = tf.cast(p["logits"], tf.float64)
    s1, s2 = tfp.random.split_seed(seed, n=2)
    # mean rate total_count * p / (1 - p): Gamma(total_count, rate = (1 - p) / p = exp(-logits))
    lam = tfp.distributions.Gamma(r, log_rate=-logits).sample(shape, seed=s1)
    lam = tf.where(r > 0, lam, tf.zeros_like(lam))
    counts = _poisson_f64(tfp, lam, (), s2, large=static[-1])
    return tf.cast(counts, dtype)


#: Above this concentration the implicit Gamma gradient is Wilson-Hilferty's (see
#: ``core.implicit.WILSON_HILFERTY_MIN``): the central difference of the incomplete gamma
#: function loses its digits there (0 at 1e25), and its evaluation slows down.
WILSON_HILFERTY_MIN = 1e4


def _standard_gamma_dlogz(tf: Any, z: Any, a: Any, log: bool) -> Any:
    """``dz/dα`` (``d(log z)/dα`` if ``log``) of a standard Gamma(α) draw ``z``, in float64.

    ``-(∂P/∂α)(z; α) / p(z; α)``: the numerics of
    :func:`polysample.core.implicit.standard_gamma_dz_dalpha` in the substrate's operations (a
    central difference of the regularized incomplete gamma function on the smaller tail; the
    normal limit where that is not finite, 0 where neither is).
    """
    large = a > WILSON_HILFERTY_MIN
    # the incomplete gamma function is evaluated at ordinary concentrations only: at 1e15 its
    # series ran for seconds per value on JAX (a tf.where computes both branches)
    z_s, a_s = tf.where(large, tf.ones_like(z), z), tf.where(large, tf.ones_like(a), a)
    h = 1e-4 * a_s / (1.0 + tf.sqrt(a_s))
    lower = (tf.math.igamma(a_s + h, z_s) - tf.math.igamma(a_s - h, z_s)) / (2 * h)
    upper = (tf.math.igammac(a_s - h, z_s) - tf.math.igammac(a_s + h, z_s)) / (2 * h)
    d_f = tf.where(z_s < a_s, lower, upper)
    log_p = tf.math.xlogy(a_s if log else a_s - 1, z_s) - z_s - tf.math.lgamma(a_s)
    out = -d_f / tf.exp(log_p)
    limit = (z + a) / (2 * a) / (z if log else 1.0)
    limit = tf.where(tf.math.is_finite(limit), limit, tf.zeros_like(limit))
    out = tf.where(tf.math.is_finite(out), out, limit)
    # Wilson-Hilferty: z = a (1 - 1/(9a) + eps / (3 sqrt a))^3 at fixed eps gives, with
    # c = (z / a)^(1/3), dz/da = c^2 (3/2 - c/2 + 1/(6a)) (core.implicit does the same)
    c = tf.pow(tf.maximum(z, 0.0) / a, 1.0 / 3.0)
    wh = c * c * (1.5 - 0.5 * c + 1.0 / (6.0 * a)) / (z if log else 1.0)
    return tf.where(large, wh, out)


def _f64_gradient(tf: Any, x: Any, alpha: Any, rate: Any, inverse: bool = False) -> Any:
    """``x``, a TFP draw of Gamma(α, rate) (or InverseGamma(α, scale=rate) if ``inverse``)
    made from parameters whose gradient was stopped, with its pathwise gradient in float64.

    On TensorFlow, TFP differentiates Gamma draws with ``tf.raw_ops.RandomGammaGrad``, which is
    inaccurate at large concentrations (at 1e4 in float32: up to 13% off per draw, 2.3% on
    the mean; at 1e5 in float64: 28%). Here ``x = z / rate`` (``rate / z``), ``z`` standard
    Gamma(α), and ``dz/dα`` is :func:`_standard_gamma_dlogz` (``tf.math.igamma`` is accurate
    to 1e-10 there), attached by ``tf.custom_gradient``: draws without gradients never
    compute it.
    """
    static_shape = tuple(x.shape)  # JAX: always known; TensorFlow: None in row buckets
    full = tf.shape(x) if None in static_shape else static_shape

    @tf.custom_gradient
    def attach(a: Any, r: Any) -> Any:
        def grad(dy: Any) -> Any:
            f64 = tf.float64
            x64, a64, r64 = tf.cast(x, f64), tf.cast(a, f64), tf.cast(r, f64)
            if inverse:  # x = r / z: dx/da = -x d(log z)/da
                dx = -x64 * _standard_gamma_dlogz(tf, r64 / x64, a64, log=True)
                return dy * tf.cast(dx, x.dtype), dy * x / r
            dx = _standard_gamma_dlogz(tf, x64 * r64, a64, log=False) / r64
            return dy * tf.cast(dx, x.dtype), -dy * x / r
        return tf.identity(x), grad

    # broadcast_to sums the gradients over the sample dimensions back to the parameters
    return attach(tf.broadcast_to(alpha, full), tf.broadcast_to(rate, full))


def _ones_like(tfp: Any, x: Any) -> Any:
    return _tf(tfp).ones_like(x)


def _on_jax(tfp: Any) -> bool:
    return bool(tfp.__name__.endswith(".jax"))


def _gamma_sample(tfp: Any, alpha: Any, rate: Any, shape: tuple[int, ...], seed: Any,
                  own_gradient: bool = False) -> Any:
    """TFP's Gamma(α, rate) draw; on TensorFlow, and on JAX with ``own_gradient``, with the
    float64 gradient of :func:`_f64_gradient` (JAX's own is accurate at ordinary
    concentrations: 1e-6 in float64, a few 1e-4 in float32; at 1e8 its mean was 82% high in
    float32, and at 1e15 it took seconds per value)."""
    tfd = tfp.distributions
    if _on_jax(tfp) and not own_gradient:
        # the standard draw, divided by the rate here: TFP's gradient of its own Gamma(α, rate)
        # reads the draw, which XLA flushes to 0 below float32's smallest normal number, and
        # was NaN there (Gamma(2, rate=1e38); an outside trial)
        return tfd.Gamma(alpha, _ones_like(tfp, rate)).sample(shape, seed=seed) / rate
    tf = _tf(tfp)
    x = tfd.Gamma(tf.stop_gradient(alpha), tf.stop_gradient(rate)).sample(shape, seed=seed)
    return _f64_gradient(tf, x, alpha, rate)


def _gamma(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
           shape: tuple[int, ...], seed: Any) -> Any:
    alpha, rate = p["concentration"], p["rate"]
    if static and static[-2]:  # JAX only (``flags_on``): TensorFlow's gradient is ours
        tf = _tf(tfp)
        return _exp_in_range(tf, _log_standard_gamma(tfp, alpha, shape, seed)
                             - tf.math.log(rate))
    return _gamma_sample(tfp, alpha, rate, shape, seed, own_gradient=bool(static and static[-1]))


def _chi2(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
          shape: tuple[int, ...], seed: Any) -> Any:
    df = p["df"]
    tfd = tfp.distributions
    if _on_jax(tfp):
        return tfd.Chi2(df).sample(shape, seed=seed)
    tf = _tf(tfp)
    x = tfd.Chi2(tf.stop_gradient(df)).sample(shape, seed=seed)  # Gamma(df / 2, rate 1/2)
    return _f64_gradient(tf, x, df / 2, tf.constant(0.5, df.dtype))


def _inverse_gamma(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                   shape: tuple[int, ...], seed: Any) -> Any:
    alpha, rate = p["concentration"], p["rate"]
    tfd = tfp.distributions
    if static and static[-1]:  # rate / G, from log G (_log_standard_gamma)
        tf = _tf(tfp)
        return _exp_in_range(tf, tf.math.log(rate) - _log_standard_gamma(tfp, alpha, shape, seed))
    if _on_jax(tfp):
        return tfd.InverseGamma(alpha, rate).sample(shape, seed=seed)
    tf = _tf(tfp)
    stop = tf.stop_gradient
    x = tfd.InverseGamma(stop(alpha), stop(rate)).sample(shape, seed=seed)
    return _f64_gradient(tf, x, alpha, rate, inverse=True)


# ---------------------------------------------------------------- scorers: torch's value at the edges
def _negative_binomial_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                             value: Any) -> Any:
    # total_count 0 and value 0 has probability 1: torch says 0, TFP NaN (lgamma(0) is
    # infinite). torch's expression there keeps torch's gradients in total_count and value.
    tf = _tf(tfp)
    count, logits = p["total_count"], p["logits"]
    edge = tf.equal(count + value, 0)
    safe = tf.where(edge, tf.ones_like(count), count)  # no NaN in the branch not taken
    lp = tfp.distributions.NegativeBinomial(safe, logits=logits).log_prob(value)
    at_edge = -count * tf.nn.softplus(logits) - value * tf.nn.softplus(-logits)
    return tf.where(edge, at_edge, lp)


def _one_hot_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
    # torch scores the category of the largest entry (value.max(-1)[1]); TFP's
    # sum(value * log_softmax(logits)) on TensorFlow is NaN where a logit is -inf (0 * -inf).
    tf = _tf(tfp)
    index = tf.argmax(value, axis=-1)
    return tfp.distributions.Categorical(logits=p["logits"]).log_prob(index)


def _relaxed_bernoulli_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                             value: Any) -> Any:
    # torch inverts its sigmoid at the value clamped to [tiny, 1 - eps] (finite at 0 and 1,
    # where the density is infinite and TFP says so).
    tf = _tf(tfp)
    dtype = value.dtype.as_numpy_dtype if hasattr(value.dtype, "as_numpy_dtype") else value.dtype
    fi = np.finfo(dtype)
    x = tf.clip_by_value(value, fi.tiny, 1 - fi.eps)
    return tfp.distributions.RelaxedBernoulli(p["temperature"], logits=p["logits"]).log_prob(x)


def _log1p_square_ratio(tf: Any, diff: Any, scale: Any, c: Any) -> Any:
    # log(1 + y^2 / c), y = diff / scale, without squaring a large y (polysample.core.
    # torch_fixes has the same for torch): TFP's StudentT and Cauchy said -inf beyond
    # |y| = 1.8e19 in float32 (a StudentT of df 0.05 draws up to 3e38: 1% of its float32
    # draws), 1.3e154 in float64; and y itself overflows near the dtype's largest value when
    # scale < 1, where log|diff| - log scale does not.
    y = diff / scale
    big = tf.abs(y) > tf.sqrt(c)
    one = tf.ones_like(y)
    d_big = tf.where(big, diff, one)
    s_big = tf.where(big, scale * one, one)
    y_small = tf.where(big, tf.zeros_like(y), y)
    large = (2 * (tf.math.log(tf.abs(d_big)) - tf.math.log(s_big)) - tf.math.log(c)
             + tf.math.log1p(c / tf.square(d_big / s_big)))
    return tf.where(big, large, tf.math.log1p(tf.square(y_small) / c))


def _student_t_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                     value: Any) -> Any:
    tf = _tf(tfp)
    df, loc, scale = p["df"], p["loc"], p["scale"]
    z = (tf.math.log(scale) + 0.5 * tf.math.log(df) + 0.5 * math.log(math.pi)
         + tf.math.lgamma(0.5 * df) - tf.math.lgamma(0.5 * (df + 1)))
    return -0.5 * (df + 1) * _log1p_square_ratio(tf, value - loc, scale, df) - z


def _cauchy_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
    tf = _tf(tfp)
    scale = p["scale"]
    diff = value - p["loc"]
    return (-math.log(math.pi) - tf.math.log(scale)
            - _log1p_square_ratio(tf, diff, scale, tf.ones_like(diff)))


def _half_cauchy_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                       value: Any) -> Any:
    tf = _tf(tfp)
    scale = p["scale"]
    lp = (math.log(2 / math.pi) - tf.math.log(scale)
          - _log1p_square_ratio(tf, value, scale, tf.ones_like(value * scale)))
    return tf.where(value >= 0, lp, tf.math.log(tf.zeros_like(lp)))


def _gumbel_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
    # TFP computes -(z + exp(-z)) with z = (x - loc) / scale: +inf (JAX) or NaN (TensorFlow)
    # where z overflows to -inf, far below loc (-3e38 at scale 0.5 in float32), where the log
    # density is -inf. And XLA's CPU exp, fused into y - exp(y), is finite garbage for y above
    # about 1e38 in float32 (y - exp(y) = -1.68e38 at y = 2e38): beyond log(largest value),
    # where exp(y) overflows, the log density is -inf, and it is not computed.
    tf = _tf(tfp)
    loc, scale = p["loc"], p["scale"]
    y = (loc - value) / scale
    dtype = y.dtype.as_numpy_dtype if hasattr(y.dtype, "as_numpy_dtype") else y.dtype
    over = y > math.log(float(np.finfo(dtype).max))
    y = tf.where(over, tf.zeros_like(y), y)  # no NaN in the gradient not taken
    lp = y - tf.exp(y) - tf.math.log(scale)
    return tf.where(over, tf.math.log(tf.zeros_like(lp)), lp)


def _pareto_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
    # TFP's Pareto divides the value by the scale, which overflows near the dtype's largest
    # value for scale < 1 (-inf at 3e38 in float32, scale 0.5; the log density is -311):
    # log alpha - log scale - (alpha + 1)(log x - log scale) in the support, TFP's value
    # outside it.
    tf = _tf(tfp)
    scale, alpha = p["scale"], p["alpha"]
    inside = value >= scale
    x = tf.where(inside, value, tf.ones_like(value) * scale)  # no NaN in the branch not taken
    log_scale = tf.math.log(scale)
    lp = tf.math.log(alpha) - log_scale - (alpha + 1) * (tf.math.log(x) - log_scale)
    return tf.where(inside, lp, _PARETO(tfp, p, static).log_prob(value))


def _laplace_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
    # TFP's |x - loc| has derivative 1 at x == loc on JAX (jnp.abs), where torch's (and
    # TensorFlow's) is sign(0) = 0: d log_prob/d loc was 1/scale at the kink on tfp alone.
    # -z sign(z) is -|z| with derivative -sign(z); torch's formula, -log(2 scale) - |z|/scale.
    tf = _tf(tfp)
    z = value - p["loc"]
    return -(z * tf.sign(z)) / p["scale"] - tf.math.log(2 * p["scale"])


def _weibull_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
    # TFP computes (x / scale)^k, which overflows in float32 near the largest value (-inf at
    # 3e38 for k = 0.8, scale 0.5, where the log density is -1.05e31): log k - k log scale
    # + (k - 1) log x - exp(k (log x - log scale)) for x > 0, TFP's value elsewhere.
    tf = _tf(tfp)
    scale, k = p["scale"], p["concentration"]
    inside = value > 0
    x = tf.where(inside, value, tf.ones_like(value))  # no NaN in the branch not taken
    log_x, log_scale = tf.math.log(x), tf.math.log(scale)
    lp = (tf.math.log(k) - k * log_scale + (k - 1) * log_x
          - tf.exp(k * (log_x - log_scale)))
    return tf.where(inside, lp, _WEIBULL(tfp, p, static).log_prob(value))


def _kumaraswamy_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...],
                       value: Any) -> Any:
    # TFP computes log1p(-x^a), and x^a rounds to 1 within a few ulps of 1 when a < 1: at
    # x = 1 - 2^-24 (float32; 1 - 2^-53 in float64), a = b = 0.3, TFP said inf where torch
    # and the closed form say 10.08, and at 1 - 2^-23 it was 0.36 too small. Inside (0, 1)
    # log(1 - x^a) is log(-expm1(a log x)); at the ends (and outside) TFP's value stands.
    tf = _tf(tfp)
    a, b = p["concentration1"], p["concentration0"]
    inside = (value > 0) & (value < 1)
    x = tf.where(inside, value, tf.ones_like(value) / 2)  # no NaN in the branch not taken
    log_x = tf.math.log(x)
    lp = (tf.math.log(a) + tf.math.log(b) + (a - 1) * log_x
          + (b - 1) * tf.math.log(-tf.math.expm1(a * log_x)))
    edge = tfp.distributions.Kumaraswamy(a, b).log_prob(value)
    return tf.where(inside, lp, edge)


def _wishart_score(tfp: Any, p: Mapping[str, Any], static: tuple[Any, ...], value: Any) -> Any:
    # TFP on TensorFlow reads the lower triangle of the value only, so its gradient in the
    # value was not torch's (gradcheck failed); torch (and JAX's Cholesky) read both.
    tf = _tf(tfp)
    sym = (value + tf.linalg.matrix_transpose(value)) / 2
    return tfp.distributions.WishartTriL(p["df"], p["scale_tril"],
                                         input_output_cholesky=False).log_prob(sym)


TFP_FAMILIES: dict[str, TfpFamily] = {
    "Bernoulli": TfpFamily(("logits",), _d("Bernoulli", "logits", dtype=_dtype_of("logits")),
                           draw=_bernoulli, draw_inputs=("probs",), rsample=False),
    "Beta": TfpFamily(("concentration1", "concentration0"),
                      _d("Beta", "concentration1", "concentration0"), draw=_beta,
                      draw_flags=_small_concentration("concentration1", "concentration0"),
                      clamp="unit", widen=("concentration1", "concentration0"), chunked=True,
                      wide_score=("concentration1", "concentration0")),
    "Binomial": TfpFamily(("total_count", "logits"), _d("Binomial", "total_count", "logits"),
                          draw=_binomial, draw_flags=_huge_count,
                          draw_inputs=("total_count", "probs"), rsample=False,
                          score=_in_float64_score(_tfp_score("Binomial", "total_count",
                                                             "logits")),
                          full_optimization=True, chunked=True),
    "Categorical": TfpFamily(("logits",), _d("Categorical", "logits", dtype="int64"),
                             draw=_categorical, draw_inputs=("probs",), rsample=False),
    "Cauchy": TfpFamily(("loc", "scale"), _d("Cauchy", "loc", "scale"), score=_cauchy_score),
    "Chi2": TfpFamily(("df",), _d("Chi2", "df"), draw=_chi2,
                      clamp="positive", widen=("df",), wide_score=("df",)),
    # TFP's ContinuousBernoulli defaults to dtype=float32 whatever the logits' dtype. Scored
    # by torch: TFP's normalizer is exact, torch's saturates (probabilities clamped to
    # [eps, 1 - eps]), so beyond |logits| of about 16 (float32; 36 in float64) they differ
    # (logits=-1e38 at 0: TFP 87.5, torch 2.77).
    "ContinuousBernoulli": TfpFamily(("logits",), _d("ContinuousBernoulli", "logits",
                                                     dtype=_dtype_of("logits")),
                                     draw=_continuous_bernoulli, log_prob=False,
                                     note="log_prob: torch's (its normalizer, not TFP's)"),
    "Dirichlet": TfpFamily(("concentration",), _d("Dirichlet", "concentration"),
                           draw=_dirichlet, draw_flags=_small_concentration("concentration"),
                           clamp="simplex", widen=("concentration",), chunked=True,
                           wide_score=("concentration",)),
    "Exponential": TfpFamily(("rate",), _d("Exponential", "rate")),
    "FisherSnedecor": TfpFamily(("df1", "df2"), draw=_fisher_snedecor, draw_flags=_small_df,
                                log_prob=False,
                                note="composed: ratio of two TFP Gamma draws",
                                clamp="positive_finite", widen=("df1", "df2"), chunked=True),
    "Gamma": TfpFamily(("concentration", "rate"), _d("Gamma", "concentration", "rate"),
                       draw=_gamma, draw_flags=_gamma_flags,
                       flags_on=("jax",), clamp="positive", widen=("concentration",),
                       chunked=True, wide_score=("concentration",)),
    "GeneralizedPareto": TfpFamily(
        ("loc", "scale", "concentration"), _GENERALIZED_PARETO,
        draw=_overflow_drawer(_GENERALIZED_PARETO, ("loc", "scale", "concentration"),
                              _gpd_from_exponential),
        draw_flags=_may_overflow(_gpd_log_odds)),
    # log_prob: the core's (torch's formula from probs, log space from logits: finding F15);
    # a backend's log_prob sees both parameters and cannot tell which one the user gave
    "Geometric": TfpFamily(("logits",), _d("Geometric", "logits"), rsample=False,
                           draw=_geometric, draw_inputs=("probs",), log_prob=False),
    "Gumbel": TfpFamily(("loc", "scale"), _d("Gumbel", "loc", "scale"), score=_gumbel_score),
    "HalfCauchy": TfpFamily(("scale",), _half_cauchy, score=_half_cauchy_score),
    "HalfNormal": TfpFamily(("scale",), _d("HalfNormal", "scale")),
    "InverseGamma": TfpFamily(("concentration", "rate"),
                              _d("InverseGamma", "concentration", "scale=rate"),
                              draw=_inverse_gamma,
                              draw_flags=_small_concentration("concentration"),
                              clamp="positive_finite", widen=("concentration",), chunked=True,
                              wide_score=("concentration",)),
    "Kumaraswamy": TfpFamily(("concentration1", "concentration0"),
                             _d("Kumaraswamy", "concentration1", "concentration0"),
                             draw=_kumaraswamy,
                             clamp="unit", widen=("concentration1", "concentration0"),
                             score=_kumaraswamy_score),
    # the onion draw reads the batch shape (TensorFlow: static rows, one trace per bucket)
    "LKJCholesky": TfpFamily(("concentration",), _lkj, static=("dim",), rsample=False,
                             draw=_lkj_onion, note="onion method from TFP Gamma draws",
                             tf_static_rows=True, in_float64=True),
    "Laplace": TfpFamily(("loc", "scale"), _d("Laplace", "loc", "scale"),
                         score=_laplace_score),
    # TFP's normal draw, its exp() taken on the torch side: XLA flushes a subnormal exp() to 0
    # (LogNormal(-92, 1) in float32 drew only zeros, outside the support; torch's values are
    # about 1e-40), so the values are torch's exp() of TFP's normal draws
    "LogNormal": TfpFamily(("loc", "scale"), _d("LogNormal", "loc", "scale"),
                           draw=_lognormal_log, post="exp"),
    "LogisticNormal": TfpFamily(("loc", "scale"), _d("Normal", "loc", "scale"), log_prob=False,
                                post="stick_breaking", chunked=True,
                                note="composed: TFP Normal + torch StickBreakingTransform"),
    "LowRankMultivariateNormal": TfpFamily(
        ("loc", "cov_factor", "cov_diag"),
        _d("MultivariateNormalDiagPlusLowRankCovariance", "loc",
           "cov_perturb_factor=cov_factor", "cov_diag_factor=cov_diag"),
        note="TFP MultivariateNormalDiagPlusLowRankCovariance", chunked=True),
    "Multinomial": TfpFamily(("logits",), _multinomial, static=("total_count",), rsample=False,
                             draw=_multinomial_draw, draw_inputs=("total_count", "probs"),
                             draw_static=(), draw_flags=_huge_count),
    "MultivariateNormal": TfpFamily(("loc", "scale_tril"),
                                    _d("MultivariateNormalTriL", "loc", "scale_tril"),
                                    note="TFP MultivariateNormalTriL"),
    "NegativeBinomial": TfpFamily(("total_count", "logits"),
                                  _d("NegativeBinomial", "total_count", "logits"), rsample=False,
                                  draw=_negative_binomial, draw_flags=_huge_mixture_rate,
                                  score=_in_float64_score(_negative_binomial_score),
                                  full_optimization=True, chunked=True),
    "Normal": TfpFamily(("loc", "scale"), _d("Normal", "loc", "scale")),
    "OneHotCategorical": TfpFamily(("logits",),
                                   _d("OneHotCategorical", "logits", dtype=_dtype_of("logits")),
                                   draw=_one_hot, draw_inputs=("probs",), rsample=False,
                                   score=_one_hot_score),
    "OneHotCategoricalStraightThrough": TfpFamily(
        ("logits",), _d("OneHotCategorical", "logits", dtype=_dtype_of("logits")),
        draw=_one_hot, draw_inputs=("probs",), log_prob=False, post="straight_through",
        note="composed: TFP OneHotCategorical + torch straight-through gradient"),
    "Pareto": TfpFamily(
        ("scale", "alpha"), _PARETO,
        draw=_overflow_drawer(_PARETO, ("scale", "alpha"),
                              lambda tf, e, scale, alpha: scale * tf.exp(e / alpha)),
        draw_flags=_may_overflow(lambda p, log_max, _: p["alpha"] * (log_max - p["scale"].log())),
        score=_pareto_score),
    "Poisson": TfpFamily(("rate",), _d("Poisson", "rate"), rsample=False,
                         draw=_poisson, draw_flags=_huge_rate, full_optimization=True,
                         score=_in_float64_score(_tfp_score("Poisson", "rate"))),
    "RelaxedBernoulli": TfpFamily(("temperature", "logits"),
                                  _d("RelaxedBernoulli", "temperature", "logits"),
                                  draw=_relaxed_bernoulli, clamp="unit",
                                  score=_relaxed_bernoulli_score),
    "RelaxedOneHotCategorical": TfpFamily(("temperature", "logits"), _relaxed_one_hot,
                                          clamp="simplex"),
    "StudentT": TfpFamily(("df", "loc", "scale"), _d("StudentT", "df", "loc", "scale"),
                          draw=_student_t, draw_flags=_small_concentration("df"),
                          widen=("df",), chunked=True, score=_student_t_score,
                          wide_score=("df",)),
    "Uniform": TfpFamily(("low", "high"), _UNIFORM, draw=_uniform, draw_flags=_wide_span),
    "VonMises": TfpFamily(("loc", "concentration"), _d("VonMises", "loc", "concentration"),
                          draw=_von_mises, draw_flags=_large_concentration,
                          note="rsample beyond torch: TFP's implicit reparameterization",
                          widen=("concentration",), wide_score=("concentration",)),
    "Weibull": TfpFamily(
        ("scale", "concentration"), _WEIBULL, clamp="positive_finite",
        draw=_overflow_drawer(_WEIBULL, ("scale", "concentration"),
                              lambda tf, e, scale, k: scale * tf.exp(tf.math.log(e) / k),
                              positive=True),
        draw_flags=_may_overflow(
            lambda p, _, log_tiny: p["concentration"] * (p["scale"].log() - log_tiny)),
        score=_weibull_score),
    "Wishart": TfpFamily(("df", "scale_tril"),
                         _d("WishartTriL", "df", "scale_tril", input_output_cholesky=False),
                         note="TFP WishartTriL", score=_wishart_score, chunked=True,
                         wide_score=("df",)),
}

#: Component families for which ``rsample("MixtureSameFamily", ...)`` is offered: univariate,
#: reparameterized in TFP, with a CDF differentiable in its parameters (TFP reparameterizes a
#: mixture through the distributional transform, which needs the component CDF).
MIXTURE_COMPONENTS: tuple[str, ...] = (
    "Normal", "LogNormal", "Laplace", "Cauchy", "Gumbel", "HalfNormal", "Exponential", "Gamma",
)
