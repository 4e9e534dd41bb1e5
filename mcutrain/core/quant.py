"""Quantization as data: how a tensor's real values are stored as integers (TFLite's affine scheme).

``real = scale * (q - zero_point)``, with one scale and zero point per tensor, or one per channel along
``axis`` (the weights of int8 models: symmetric, zero point 0). Activations are int8 with one scale and
zero point; biases are int32 with zero point 0 and ``scale = input scale * weight scale`` per channel.

Conversions follow TFLite's reference kernels exactly (``QUANTIZE``: ``round(x / scale) + zero_point``
in float32, rounding half away from zero, then saturation; ``DEQUANTIZE``: ``scale * (q - zero_point)``
in float32), so that the simulator, the C kernels and LiteRT agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Integer types and their ranges.
RANGES = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (-(2**31), 2**31 - 1)}


@dataclass(frozen=True)
class Quant:
    scale: tuple[float, ...]  # one, or one per channel along `axis`
    zero_point: tuple[int, ...]  # as many as scales
    dtype: str = "int8"
    axis: int = 0  # the channel axis of per-channel parameters (PyTorch layout: output channels)

    def __post_init__(self) -> None:
        if self.dtype not in RANGES:
            raise ValueError(f"unsupported integer type {self.dtype!r}: one of {', '.join(RANGES)}")
        if not self.scale or len(self.scale) != len(self.zero_point):
            raise ValueError(f"{len(self.scale)} scales for {len(self.zero_point)} zero points")
        if not all(np.isfinite(s) and s > 0 for s in self.scale):
            raise ValueError(f"quantization scales must be positive and finite, got {self.scale[:4]}")
        lo, hi = RANGES[self.dtype]
        if not all(lo <= z <= hi for z in self.zero_point):
            raise ValueError(f"zero points {self.zero_point[:4]} outside the {self.dtype} range")

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    @property
    def bits(self) -> int:
        return {"int8": 8, "int16": 16, "int32": 32}[self.dtype]

    @property
    def nbytes(self) -> int:
        """Bytes per element."""
        return self.bits // 8

    @property
    def range(self) -> tuple[int, int]:
        return RANGES[self.dtype]

    @staticmethod
    def per_tensor(scale: float, zero_point: int, dtype: str = "int8") -> Quant:
        return Quant((float(np.float32(scale)),), (int(zero_point),), dtype)

    def _bcast(self, values: tuple, ndim: int) -> np.ndarray:
        a = np.asarray(values)
        if not self.per_channel:
            return a.reshape(())
        shape = [1] * ndim
        shape[self.axis] = -1
        return a.reshape(shape)

    def scales(self, ndim: int) -> np.ndarray:
        """The scales as a float32 array broadcastable to a tensor of ``ndim`` dimensions."""
        return self._bcast(self.scale, ndim).astype(np.float32)

    def zero_points(self, ndim: int) -> np.ndarray:
        return self._bcast(self.zero_point, ndim).astype(np.int64)

    def to_dict(self) -> dict[str, object]:
        return {
            "scale": list(self.scale),
            "zero_point": list(self.zero_point),
            "dtype": self.dtype,
            "axis": self.axis,
        }

    @staticmethod
    def from_dict(d: dict) -> Quant:
        return Quant(
            tuple(float(s) for s in d["scale"]),
            tuple(int(z) for z in d["zero_point"]),
            str(d.get("dtype", "int8")),
            int(d.get("axis", 0)),
        )


def round_half_away(x: np.ndarray) -> np.ndarray:
    """``std::round``: halves away from zero (numpy's ``round`` goes to even), exactly: the fraction
    is compared with 0.5 (``floor(|x| + 0.5)`` would round 0.49999997f up to 1, as its sum rounds)."""
    a = np.abs(x)
    t = np.floor(a)
    r = t + (a - t >= np.asarray(0.5, dtype=x.dtype)).astype(x.dtype)  # a - t is exact
    return np.copysign(r, x)


def quantize(x: np.ndarray, q: Quant) -> np.ndarray:
    """TFLite's QUANTIZE: ``clamp(round(x / scale) + zero_point)``, the division in float32."""
    x = np.asarray(x, dtype=np.float32)
    v = round_half_away(x / q.scales(x.ndim)).astype(np.int64) + q.zero_points(x.ndim)
    lo, hi = q.range
    return np.clip(v, lo, hi).astype(np.dtype(q.dtype))


def dequantize(v: np.ndarray, q: Quant) -> np.ndarray:
    """TFLite's DEQUANTIZE: ``scale * (q - zero_point)`` in float32."""
    v = np.asarray(v)
    return (q.scales(v.ndim) * (v.astype(np.int64) - q.zero_points(v.ndim)).astype(np.float32)).astype(
        np.float32
    )
