"""The op kinds of the mcutrain IR, a small typed graph of per-sample tensors (:mod:`mcutrain.core.graph`).

Conventions (every stage relies on them):

* Tensors are per sample, channels first, no batch axis: images are ``(C, H, W)``, vectors ``(F,)``.
* Parameters use PyTorch layouts: conv ``[Cout, Cin/groups, kh, kw]``, transposed conv
  ``[Cin, Cout/groups, kh, kw]``, linear ``[out, in]``; biases ``[Cout]``. Conv, transposed conv and
  linear layers always carry a bias (zeros when the source model had none), so that a bias-only update
  is possible everywhere.
* Spatial padding is ``(top, bottom, left, right)``; asymmetric padding (TFLite ``SAME``) is explicit.
* A node's output tensor has the node's name. Graph inputs are tensors that no node produces.
* Nodes are stored in a topological order, which is also the forward execution order.

Op attributes are frozen dataclasses, one per op kind (this module); each knows its output shape, its
parameter shapes and its multiply-accumulate count. Everything else about an op kind (its PyTorch
semantics, its backward, its C kernels) is its entry in :mod:`mcutrain.core.op_table`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import ClassVar

Shape = tuple[int, ...]
Pad4 = tuple[int, int, int, int]  # top, bottom, left, right
Pair = tuple[int, int]


class IRError(ValueError):
    """A graph that is malformed: wrong shapes, dangling names, bad attributes."""


def _chw(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise IRError(f"{op} expects a (C, H, W) input, got shape {shape}")
    return shape[0], shape[1], shape[2]


def _window_out(size: int, k: int, s: int, p0: int, p1: int, d: int = 1) -> int:
    out = (size + p0 + p1 - d * (k - 1) - 1) // s + 1
    if out <= 0:
        raise IRError(f"window k={k} s={s} pad=({p0},{p1}) does not fit input size {size}")
    return out


# ---------------------------------------------------------------------------------------------------
# Op kinds
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """Base of all op attribute classes."""

    kind: ClassVar[str] = ""
    arity: ClassVar[int] = 1  # number of activation inputs, -1 for variadic
    param_names: ClassVar[tuple[str, ...]] = ()

    def out_shape(self, ins: list[Shape]) -> Shape:
        raise NotImplementedError

    def param_shapes(self, ins: list[Shape]) -> dict[str, Shape]:
        return {}

    def macs(self, ins: list[Shape], out: Shape) -> int:
        """Multiply-accumulates of one forward pass (elementwise ops count one per element)."""
        return math.prod(out)

    @property
    def trainable(self) -> bool:
        return bool(self.param_names)


@dataclass(frozen=True)
class Conv2d(Op):
    out_channels: int
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pad4 = (0, 0, 0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    kind: ClassVar[str] = "conv2d"
    param_names: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def out_shape(self, ins: list[Shape]) -> Shape:
        c, h, w = _chw(ins[0], self.kind)
        if c % self.groups or self.out_channels % self.groups:
            raise IRError(f"conv2d groups={self.groups} must divide Cin={c} and Cout={self.out_channels}")
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        t, b, l, r = self.padding
        return (self.out_channels, _window_out(h, kh, sh, t, b, dh), _window_out(w, kw, sw, l, r, dw))

    def param_shapes(self, ins: list[Shape]) -> dict[str, Shape]:
        cin = ins[0][0]
        return {
            "weight": (self.out_channels, cin // self.groups, *self.kernel),
            "bias": (self.out_channels,),
        }

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return math.prod(out) * (ins[0][0] // self.groups) * self.kernel[0] * self.kernel[1]

    @property
    def depthwise(self) -> bool:
        return self.groups > 1


@dataclass(frozen=True)
class ConvTranspose2d(Op):
    """Transposed convolution. ``padding`` crops the full output ``(H-1)*s + d*(k-1) + 1``; a negative
    bottom/right crop extends it (PyTorch's ``output_padding``)."""

    out_channels: int
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pad4 = (0, 0, 0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    kind: ClassVar[str] = "conv_transpose2d"
    param_names: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def out_shape(self, ins: list[Shape]) -> Shape:
        c, h, w = _chw(ins[0], self.kind)
        if c % self.groups or self.out_channels % self.groups:
            raise IRError(f"conv_transpose2d groups={self.groups} must divide Cin={c} and Cout")
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        t, b, l, r = self.padding
        ho = (h - 1) * sh + dh * (kh - 1) + 1 - t - b
        wo = (w - 1) * sw + dw * (kw - 1) + 1 - l - r
        if ho <= 0 or wo <= 0:
            raise IRError(f"conv_transpose2d output would be empty for input {ins[0]}")
        return (self.out_channels, ho, wo)

    def param_shapes(self, ins: list[Shape]) -> dict[str, Shape]:
        cin = ins[0][0]
        return {
            "weight": (cin, self.out_channels // self.groups, *self.kernel),
            "bias": (self.out_channels,),
        }

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return math.prod(ins[0]) * (self.out_channels // self.groups) * self.kernel[0] * self.kernel[1]


@dataclass(frozen=True)
class Linear(Op):
    out_features: int
    kind: ClassVar[str] = "linear"
    param_names: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def out_shape(self, ins: list[Shape]) -> Shape:
        if len(ins[0]) != 1:
            raise IRError(f"linear expects a flat (F,) input, got {ins[0]}; insert a flatten first")
        return (self.out_features,)

    def param_shapes(self, ins: list[Shape]) -> dict[str, Shape]:
        return {"weight": (self.out_features, ins[0][0]), "bias": (self.out_features,)}

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return self.out_features * ins[0][0]


@dataclass(frozen=True)
class BatchNorm(Op):
    """Inference-mode batch norm as imported. :func:`mcutrain.passes.fold_batchnorm` folds it into the
    preceding conv/linear, or turns it into a :class:`ChannelAffine`; training graphs never hold it."""

    eps: float = 1e-5
    kind: ClassVar[str] = "batch_norm"
    param_names: ClassVar[tuple[str, ...]] = ("gamma", "beta", "mean", "var")

    def out_shape(self, ins: list[Shape]) -> Shape:
        return ins[0]

    def param_shapes(self, ins: list[Shape]) -> dict[str, Shape]:
        c = ins[0][0]
        return {k: (c,) for k in self.param_names}


@dataclass(frozen=True)
class ChannelAffine(Op):
    """``y[c] = x[c] * weight[c] + bias[c]``: a batch norm that could not be folded."""

    kind: ClassVar[str] = "channel_affine"
    param_names: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def out_shape(self, ins: list[Shape]) -> Shape:
        return ins[0]

    def param_shapes(self, ins: list[Shape]) -> dict[str, Shape]:
        return {"weight": (ins[0][0],), "bias": (ins[0][0],)}


class ActFn(str, enum.Enum):
    RELU = "relu"
    RELU6 = "relu6"
    LEAKY_RELU = "leaky_relu"
    SIGMOID = "sigmoid"
    TANH = "tanh"


@dataclass(frozen=True)
class Activation(Op):
    fn: ActFn
    alpha: float = 0.0  # negative slope of leaky_relu
    kind: ClassVar[str] = "activation"

    def out_shape(self, ins: list[Shape]) -> Shape:
        return ins[0]


@dataclass(frozen=True)
class MaxPool2d(Op):
    kernel: Pair
    stride: Pair
    padding: Pad4 = (0, 0, 0, 0)
    kind: ClassVar[str] = "max_pool2d"

    def out_shape(self, ins: list[Shape]) -> Shape:
        c, h, w = _chw(ins[0], self.kind)
        t, b, l, r = self.padding
        return (
            c,
            _window_out(h, self.kernel[0], self.stride[0], t, b),
            _window_out(w, self.kernel[1], self.stride[1], l, r),
        )

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return math.prod(out) * self.kernel[0] * self.kernel[1]


@dataclass(frozen=True)
class AvgPool2d(Op):
    """Average pool. ``count_include_pad=False`` divides by the number of in-bounds elements (TFLite)."""

    kernel: Pair
    stride: Pair
    padding: Pad4 = (0, 0, 0, 0)
    count_include_pad: bool = True
    kind: ClassVar[str] = "avg_pool2d"

    out_shape = MaxPool2d.out_shape
    macs = MaxPool2d.macs


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    """Mean over H and W: ``(C, H, W) -> (C,)``."""

    kind: ClassVar[str] = "global_avg_pool"

    def out_shape(self, ins: list[Shape]) -> Shape:
        return (_chw(ins[0], self.kind)[0],)

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return math.prod(ins[0])


@dataclass(frozen=True)
class GlobalMaxPool(Op):
    """Max over H and W: ``(C, H, W) -> (C,)``."""

    kind: ClassVar[str] = "global_max_pool"

    out_shape = GlobalAvgPool.out_shape
    macs = GlobalAvgPool.macs


@dataclass(frozen=True)
class Reshape(Op):
    """Any reshape that keeps the element order (flatten included). Costs nothing: the output aliases
    the input buffer."""

    shape: Shape
    kind: ClassVar[str] = "reshape"

    def out_shape(self, ins: list[Shape]) -> Shape:
        if math.prod(self.shape) != math.prod(ins[0]):
            raise IRError(f"reshape {ins[0]} -> {self.shape} changes the number of elements")
        return self.shape

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return 0


@dataclass(frozen=True)
class Add(Op):
    kind: ClassVar[str] = "add"
    arity: ClassVar[int] = 2

    def out_shape(self, ins: list[Shape]) -> Shape:
        if ins[0] != ins[1]:
            raise IRError(f"add needs equal shapes, got {ins[0]} and {ins[1]}")
        return ins[0]


@dataclass(frozen=True)
class Concat(Op):
    """Concatenation along the channel axis (axis 0 of the per-sample tensor)."""

    kind: ClassVar[str] = "concat"
    arity: ClassVar[int] = -1

    def out_shape(self, ins: list[Shape]) -> Shape:
        rest = {s[1:] for s in ins}
        if len(rest) != 1:
            raise IRError(f"concat needs equal trailing shapes, got {ins}")
        return (sum(s[0] for s in ins), *ins[0][1:])

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return 0


class UpsampleMode(str, enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"


@dataclass(frozen=True)
class Upsample(Op):
    """Upsampling by integer factors. Bilinear follows PyTorch's ``align_corners`` convention
    (``half_pixel`` centres when False)."""

    scale: Pair
    mode: UpsampleMode = UpsampleMode.NEAREST
    align_corners: bool = False
    kind: ClassVar[str] = "upsample"

    def out_shape(self, ins: list[Shape]) -> Shape:
        c, h, w = _chw(ins[0], self.kind)
        return (c, h * self.scale[0], w * self.scale[1])

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return math.prod(out) * (4 if self.mode is UpsampleMode.BILINEAR else 1)


@dataclass(frozen=True)
class Pad(Op):
    padding: Pad4
    value: float = 0.0
    kind: ClassVar[str] = "pad"

    def out_shape(self, ins: list[Shape]) -> Shape:
        c, h, w = _chw(ins[0], self.kind)
        t, b, l, r = self.padding
        return (c, h + t + b, w + l + r)

    def macs(self, ins: list[Shape], out: Shape) -> int:
        return 0


@dataclass(frozen=True)
class Softmax(Op):
    """Softmax over a flat ``(F,)`` vector."""

    kind: ClassVar[str] = "softmax"

    def out_shape(self, ins: list[Shape]) -> Shape:
        if len(ins[0]) != 1:
            raise IRError(f"softmax is supported over flat (F,) vectors, got {ins[0]}")
        return ins[0]


OP_TYPES: dict[str, type[Op]] = {
    t.kind: t
    for t in (
        Conv2d,
        ConvTranspose2d,
        Linear,
        BatchNorm,
        ChannelAffine,
        Activation,
        MaxPool2d,
        AvgPool2d,
        GlobalAvgPool,
        GlobalMaxPool,
        Reshape,
        Add,
        Concat,
        Upsample,
        Pad,
        Softmax,
    )
}

#: Op kinds that hold trainable parameters (weight + bias).
TRAINABLE_OPS = (Conv2d, ConvTranspose2d, Linear, ChannelAffine)
