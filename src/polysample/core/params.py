"""``Params``: what a backend receives for one draw, filled in by the core.

What it holds is :class:`Params`'s docstring (``help(Params)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.distributions import Distribution

from .families import FAMILIES, FamilySpec

__all__ = ["Params"]


#: family -> parameter -> its event rank (read on every parameter read of every draw).
_EVENT_DIMS: dict[str, dict[str, int]] = {
    f: dict(zip(spec.params, spec.param_event_dims, strict=True)) for f, spec in FAMILIES.items()}


class Params(Mapping[str, Any]):
    """The parameters of one draw and its shapes, dtype and device.

    A read-only mapping of the family's canonical parameters (torch's
    attribute names: ``polysample.plugin.FAMILIES``), already validated and broadcast by the
    torch constructor, plus what the core knows about the call:

    * ``family``: the torch family name;
    * ``batch_shape``, ``event_shape``: the distribution's shapes (the result has shape
      ``sample_shape + batch_shape + event_shape``);
    * ``dtype``: the result dtype (the parameters' floating dtype; ``int64`` for ``Categorical``);
    * ``float_dtype``: the parameters' floating dtype (the dtype to compute in);
    * ``device``: the parameters' device, where the result must be.

    Values are read from the distribution only when a backend asks for them (so a draw that needs
    two of four parameters reads two). Parameters that torch keeps as Python numbers (a float
    ``temperature``) come back as tensors of ``float_dtype`` on ``device``; integer-valued
    parameters (``total_count`` of ``Multinomial``, ``dim`` of ``LKJCholesky``) stay Python ints;
    integer tensors given for floating parameters (an ``int64`` ``df``) come as ``float_dtype``.
    """

    __slots__ = ("family", "batch_shape", "event_shape", "dtype", "float_dtype", "device",
                 "_source", "_names", "_ints", "_by_attr")

    def __init__(self, family: str, source: Any, batch_shape: torch.Size,
                 event_shape: torch.Size, dtype: torch.dtype, float_dtype: torch.dtype,
                 device: torch.device, names: tuple[str, ...] | None = None,
                 ints: tuple[str, ...] | None = None) -> None:
        if names is None or ints is None:  # the core passes both (no table lookup per draw)
            spec = FAMILIES[family]
            names = spec.params if names is None else names
            ints = spec.integer_params if ints is None else ints
        self.family = family
        self.batch_shape = batch_shape
        self.event_shape = event_shape
        self.dtype = dtype
        self.float_dtype = float_dtype
        self.device = device
        self._source = source  # an object with the parameters as attributes, or a Mapping
        # Decided once here (a distribution first: the ABC check alone costs 0.2 us), not on
        # every parameter read.
        self._by_attr = isinstance(source, Distribution) or not isinstance(source, Mapping)
        self._names = names
        self._ints = ints

    # -------------------------------------------------------------- Mapping
    def __getitem__(self, key: str) -> Any:
        if key not in self._names:
            raise KeyError(key)
        src = self._source
        value = getattr(src, key) if self._by_attr else src[key]
        if isinstance(value, torch.Tensor):
            if key in self._ints:
                return value
            if not (value.dtype.is_floating_point or value.is_complex()):
                # An integer tensor (an int64 df): computed in the floating dtype, as torch's
                # arithmetic promotes it.
                value = value.to(self.float_dtype)
        elif key in self._ints:
            return value
        else:
            # torch keeps some parameters as Python numbers (RelaxedBernoulli's temperature).
            value = torch.as_tensor(value, dtype=self.float_dtype, device=self.device)
        return self._batched(key, value)

    def _batched(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """``value`` broadcast to the batch shape (a stride-0 view), as documented: torch keeps
        some parameters without it (Wishart's ``df`` given as a Python number is a 0-d tensor
        beside a batch of matrices), and a backend reading parameters per batch element failed
        there. A parameter of fewer dimensions than its event rank (a 0-d temperature of
        RelaxedOneHotCategorical, whose trailing 1 torch does not require) stays as it is."""
        dims = _EVENT_DIMS.get(self.family)
        nb = value.dim() - (dims[key] if dims is not None
                            else FAMILIES[self.family].param_event_dim(key))
        if nb < 0 or value.shape[:nb] == self.batch_shape:
            return value
        try:
            return value.expand(self.batch_shape + value.shape[nb:])
        except RuntimeError:  # not broadcastable: left to the backend's own error
            return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return (f"Params({self.family}, batch_shape={tuple(self.batch_shape)}, "
                f"event_shape={tuple(self.event_shape)}, dtype={self.dtype}, "
                f"device={self.device}, names={self._names})")

    # -------------------------------------------------------------- helpers
    @property
    def spec(self) -> FamilySpec:
        return FAMILIES[self.family]

    def shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:
        """The result shape ``sample_shape + batch_shape + event_shape``."""
        return sample_shape + self.batch_shape + self.event_shape

    @property
    def from_logits(self) -> bool:
        """Whether the distribution was given ``logits`` rather than ``probs`` (False for a
        family without the two, and for a plain mapping that holds both)."""
        src = self._source
        attrs = getattr(src, "__dict__", {}) if self._by_attr else src
        if "logits" not in attrs or "logits" not in self._names:
            return False
        if "probs" not in attrs:
            return True
        # both: torch keeps the given one as _param (GeometricFix records it itself)
        return attrs.get("_param") is attrs["logits"] or bool(attrs.get("_ps_from_logits"))

    def computed_in(self, dtype: torch.dtype) -> Params:
        """These parameters with every floating tensor cast to ``dtype`` (differentiably), and
        ``dtype`` as the result's dtype unless it is an index: what a backend receives when
        the core computes a half-precision draw in float32, or a float32 draw from ``logits``
        in float64. Given ``logits``, ``probs`` are derived again from the cast logits
        (``sigmoid``, ``softmax``), not cast: ``sigmoid(17.)`` is 1.0 in float32 and
        ``1 - 4.1e-8`` in float64."""
        values: dict[str, Any] = {}
        for name in self._names:
            try:
                value = self[name]
            except Exception:  # noqa: BLE001 - a lazy parameter torch cannot compute here
                continue
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                value = value.to(dtype)
            values[name] = value
        if self.from_logits and "probs" in values and "logits" in values:
            logits = values["logits"]
            values["probs"] = (torch.sigmoid(logits) if _EVENT_DIMS[self.family]["probs"] == 0
                               else torch.softmax(logits, -1))
            values["_ps_from_logits"] = True  # kept by a second cast (half -> float32 -> 64)
        result = dtype if self.dtype.is_floating_point else self.dtype
        return Params(self.family, values, self.batch_shape, self.event_shape, result, dtype,
                      self.device, self._names)

    @classmethod
    def of(cls, family: str, params: Mapping[str, Any]) -> Params:
        """``params`` as a :class:`Params` (unchanged if it is one).

        For callers that hand a backend a plain mapping (tests, benchmarks, other backends):
        the shapes, dtype and device are taken from ``torch.distributions.<family>`` built from
        the mapping.
        """
        if isinstance(params, Params):
            return params
        import torch.distributions as td

        spec = FAMILIES[family]
        kwargs = {k: params[k] for k in spec.params if k in params and k != "probs"}
        if "logits" not in kwargs and "probs" in params:
            kwargs["probs"] = params["probs"]
        dist = getattr(td, family)(**kwargs, validate_args=False)
        float_dtype, device = _float_dtype_device(spec, dist)
        dtype = torch.int64 if spec.kind == "index" else float_dtype
        values = {k: params[k] if k in params else getattr(dist, k) for k in spec.params}
        return cls(family, values, dist.batch_shape, dist.event_shape, dtype, float_dtype,
                   device)


def _float_dtype_device(spec: FamilySpec, source: Any) -> tuple[torch.dtype, torch.device]:
    """The floating dtype and device of the first floating tensor parameter (torch's promotion
    made every floating parameter of one distribution share them); integer tensors alone give
    torch's default dtype."""
    get = source.__getitem__ if isinstance(source, Mapping) else source.__dict__.get
    first = None
    for name in spec.tensor_params:
        t = get(name)
        if isinstance(t, torch.Tensor):
            if t.is_floating_point():
                return t.dtype, t.device
            first = t if first is None else first
    if first is not None:  # integer tensors only: torch's default floating dtype
        return torch.get_default_dtype(), first.device
    return torch.get_default_dtype(), torch.device("cpu")
