"""ATen op handlers of the PyTorch frontend for shape ops, joins, resampling and identities (the
registry, the helpers and the other handlers are in :mod:`mcutrain.frontends.torch_rules`, whose
docstring describes what a handler receives and returns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx

from mcutrain.core import ir
from mcutrain.frontends.torch_rules import (
    AFFINE_ALT,
    Act,
    check,
    first_tensor,
    handles,
    maybe_tuple,
    norm_dims,
    out_hw,
    packet,
    scalar,
)

if TYPE_CHECKING:
    from mcutrain.frontends.torch_converter import Converter

aten = torch.ops.aten


# ---------------------------------------------------------------------------------------------------
# shape ops, joins, resampling
# ---------------------------------------------------------------------------------------------------


@handles(aten.view, aten.reshape, aten._unsafe_view, aten.flatten, aten.squeeze, aten.unsqueeze)
def _reshape(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x = cv.act(cv.first(a))
    p, rank = packet(node), cv.rank(x)
    if p is aten.squeeze:
        dims = a.get("dim")
        check(
            dims is not None and 0 not in norm_dims(dims, rank),
            "squeeze() would drop the batch axis; use flatten(1)",
        )
    if p is aten.unsqueeze:
        check(int(a["dim"]) % (rank + 1) != 0, "unsqueeze(0) would move the batch axis")
    return cv.reshape(node, x, cv.sample_shape(node))


@handles(aten.add)
def _add(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x, y = a["self"], a["other"]
    if not (isinstance(x, Act) and isinstance(y, Act)):
        raise ValueError(
            "add of a constant is not supported (a per-channel constant folds into the bias only directly "
            f"after a conv/linear); nearest: {AFFINE_ALT}"
        )
    check(scalar(a.get("alpha", 1)) == 1, "add with alpha != 1 is not supported")
    check(
        cv.shapes[x.name] == cv.shapes[y.name],
        f"add needs equal shapes (no broadcasting), got {cv.shapes[x.name]} and {cv.shapes[y.name]}",
    )
    return cv.emit(node, ir.Add(), [x.name, y.name])


@handles(aten.cat)
def _cat(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    xs = [cv.act(t) for t in a["tensors"]]
    check(int(a["dim"]) % cv.rank(xs[0]) == 1, "cat is supported along the channel axis (dim=1) only")
    return Act(xs[0]) if len(xs) == 1 else cv.emit(node, ir.Concat(), xs)


@handles(aten.upsample_nearest2d, aten._upsample_nearest_exact2d, aten.upsample_bilinear2d)
def _upsample(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x = cv.act(cv.first(a))
    check(cv.rank(x) == 4, "upsampling needs an (N, C, H, W) tensor")
    _, h, w = cv.shapes[x]
    oh, ow = out_hw(node)
    check(oh % h == 0 and ow % w == 0, f"upsampling {h}x{w} -> {oh}x{ow} is not by integer factors")
    scale = (oh // h, ow // w)
    given = a.get("scale_factors") or [a.get("scales_h"), a.get("scales_w")]
    check(
        all(g is None or float(g) == s for g, s in zip(given, scale, strict=True)),
        f"scale factors {given} are not the integers {scale}",
    )
    if packet(node) is aten.upsample_bilinear2d:
        op = ir.Upsample(scale, ir.UpsampleMode.BILINEAR, bool(a["align_corners"]))
    else:  # nearest-exact equals nearest for integer factors
        op = ir.Upsample(scale, ir.UpsampleMode.NEAREST)
    return cv.emit(node, op, [x])


@handles(aten.constant_pad_nd, aten.pad)
def _pad(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x = cv.act(a["self"])
    mode = a.get("mode", "constant")
    check(mode == "constant", f"{mode} padding is not supported; nearest: constant (zero) padding")
    p = [int(v) for v in a["pad"]]
    p += [0] * (4 - len(p))
    check(
        cv.rank(x) == 4 and not any(p[4:]),
        "only spatial (H, W) padding of an (N, C, H, W) tensor is supported",
    )
    check(min(p) >= 0, "negative padding (cropping) is not supported")
    left, right, top, bottom = p[:4]
    if not any(p):
        return Act(x)
    return cv.emit(node, ir.Pad((top, bottom, left, right), float(a.get("value") or 0.0)), [x])


@handles(aten.softmax, aten._softmax)
def _softmax(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x = cv.act(a["self"])
    check(
        cv.rank(x) == 2 and int(a["dim"]) % 2 == 1,
        "softmax is supported over the features of a flat (N, F) tensor; flatten first",
    )
    return cv.emit(node, ir.Softmax(), [x])


# ---------------------------------------------------------------------------------------------------
# identities
# ---------------------------------------------------------------------------------------------------


@handles(
    aten.dropout, aten.native_dropout, aten.feature_dropout, aten.alpha_dropout, aten.feature_alpha_dropout
)
def _dropout(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Any:
    x = cv.act(a["input"])
    check(not a.get("train"), "dropout in training mode: call model.eval() before torch.export")
    return maybe_tuple(node, Act(x))


@handles(aten.clone, aten.alias, aten.contiguous, aten.detach, aten.lift_fresh_copy)
def _identity(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    return Act(cv.act(cv.first(a)))


@handles(aten._to_copy, aten.to, aten.type_as)
def _cast(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    val = first_tensor(node.meta.get("val"))
    check(isinstance(val, torch.Tensor) and val.is_floating_point(), "conversion to a non-float dtype")
    return Act(cv.act(cv.first(a)))


@handles(aten.sym_size)
def _sym_size(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Any:
    return node.meta.get("val")
