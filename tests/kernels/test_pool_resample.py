"""Pooling (max, avg, global) and upsampling (nearest, bilinear) vs PyTorch autograd."""

from __future__ import annotations

import numpy as np
import pytest

from mcutrain.core import ir

from .ckernels import ptr
from .golden import FW, GRAD, assert_close, op_reference, rand


def _bw_check(name, call, x_shape, gx_ref, accumulate, seed=9):
    """call(gx_ptr, accumulate); accumulate 0 must overwrite (NaN before), 1 must add."""
    gx0 = rand(np.random.default_rng(seed), *x_shape)
    gx = gx0.copy() if accumulate else np.full(x_shape, np.nan, np.float32)
    call(ptr(gx), accumulate)
    assert_close(gx, (gx0 if accumulate else 0) + gx_ref, GRAD, f"{name} acc={accumulate}")


# (name, (C, H, W), kernel, stride, padding (t, b, l, r), ties, seed). ties: inputs from a few integers so
# that windows hold equal maxima (the first one in row-major window order gets the gradient).
POOL_CASES = [
    ("k3s2_pad1", (3, 7, 8), (3, 3), (2, 2), (1, 1, 1, 1), False, 1),
    ("k2s2", (2, 6, 6), (2, 2), (2, 2), (0, 0, 0, 0), False, 2),
    ("k3x2_s1x2_asym", (2, 5, 7), (3, 2), (1, 2), (0, 1, 1, 0), False, 3),
    ("overlap_ties", (2, 6, 5), (3, 3), (1, 1), (1, 1, 1, 1), True, 4),
    ("pad_heavy", (1, 4, 4), (3, 3), (2, 2), (2, 1, 0, 2), False, 5),
]
POOL_IDS = [c[0] for c in POOL_CASES]


def _pool_input(shape, ties, seed):
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    return rand(rng, *shape)


def _pool_dims(k, struct, shape, out, kernel, stride, padding, **extra):
    return k.dims(
        struct,
        c=shape[0],
        in_h=shape[1],
        in_w=shape[2],
        out_h=out[1],
        out_w=out[2],
        kernel_h=kernel[0],
        kernel_w=kernel[1],
        stride_h=stride[0],
        stride_w=stride[1],
        pad_top=padding[0],
        pad_left=padding[2],
        **extra,
    )


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("name,shape,kernel,stride,padding,ties,seed", POOL_CASES, ids=POOL_IDS)
def test_max_pool2d(kernels, name, shape, kernel, stride, padding, ties, seed, accumulate):
    op = ir.MaxPool2d(kernel, stride, padding)
    out = op.out_shape([shape])
    x = _pool_input(shape, ties, seed)
    gy = rand(np.random.default_rng(seed + 1), *out)
    y_ref, (gx_ref,), _ = op_reference(op, [x], {}, gy)
    d = _pool_dims(kernels, "mt_max_pool2d_dims_t", shape, out, kernel, stride, padding)
    y = np.full(out, np.nan, np.float32)
    kernels.mt_max_pool2d_fw_f32(d, ptr(x), ptr(y))
    assert_close(y, y_ref, FW, "max_pool2d fw")
    _bw_check(
        "max_pool2d bw",
        lambda g, a: kernels.mt_max_pool2d_bw_igrad_f32(d, ptr(x), ptr(gy), g, a),
        shape,
        gx_ref,
        accumulate,
    )


@pytest.mark.parametrize("count_include_pad", [1, 0])
@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("name,shape,kernel,stride,padding,ties,seed", POOL_CASES, ids=POOL_IDS)
def test_avg_pool2d(kernels, name, shape, kernel, stride, padding, ties, seed, accumulate, count_include_pad):
    op = ir.AvgPool2d(kernel, stride, padding, bool(count_include_pad))
    out = op.out_shape([shape])
    x = _pool_input(shape, ties, seed)
    gy = rand(np.random.default_rng(seed + 1), *out)
    y_ref, (gx_ref,), _ = op_reference(op, [x], {}, gy)
    d = _pool_dims(
        kernels,
        "mt_avg_pool2d_dims_t",
        shape,
        out,
        kernel,
        stride,
        padding,
        count_include_pad=count_include_pad,
    )
    y = np.full(out, np.nan, np.float32)
    kernels.mt_avg_pool2d_fw_f32(d, ptr(x), ptr(y))
    assert_close(y, y_ref, FW, "avg_pool2d fw")
    _bw_check(
        "avg_pool2d bw",
        lambda g, a: kernels.mt_avg_pool2d_bw_igrad_f32(d, ptr(gy), g, a),
        shape,
        gx_ref,
        accumulate,
    )


# (name, (C, H, W), ties, seed); ties: relu-like input where whole channels share the maximum
GLOBAL_CASES = [("4x5x3", (4, 5, 3), False, 1), ("1x1x1", (1, 1, 1), False, 2), ("ties", (3, 4, 4), True, 3)]


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("name,shape,ties,seed", GLOBAL_CASES, ids=[c[0] for c in GLOBAL_CASES])
def test_global_pools(kernels, name, shape, ties, seed, accumulate):
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape)
    if ties:
        x = np.maximum(np.round(x), 0).astype(np.float32)
        x[0] = 0.0  # a whole channel equal to its max
        x[1, 0, :2] = x[1].max()
    c, hw = shape[0], shape[1] * shape[2]
    gy = rand(rng, c)
    for kind in ("avg", "max"):
        op = ir.GlobalAvgPool() if kind == "avg" else ir.GlobalMaxPool()
        y_ref, (gx_ref,), _ = op_reference(op, [x], {}, gy)
        y = np.full(c, np.nan, np.float32)
        getattr(kernels, f"mt_global_{kind}_pool_fw_f32")(c, hw, ptr(x), ptr(y))
        assert_close(y, y_ref, FW, f"global_{kind}_pool fw")
        if kind == "avg":
            call = lambda g, a: kernels.mt_global_avg_pool_bw_igrad_f32(c, hw, ptr(gy), g, a)  # noqa: E731
        else:
            call = lambda g, a: kernels.mt_global_max_pool_bw_igrad_f32(c, hw, ptr(x), ptr(gy), g, a)  # noqa: E731
        _bw_check(f"global_{kind}_pool bw", call, shape, gx_ref, accumulate)


# (name, (C, H, W), (sh, sw), seed)
UPSAMPLE_CASES = [
    ("2x2", (2, 3, 4), (2, 2), 1),
    ("3x2_odd", (1, 5, 3), (3, 2), 2),
    ("1x4", (3, 2, 2), (1, 4), 3),
    ("h1_w1", (2, 1, 1), (2, 3), 4),
    ("4x4_large", (2, 9, 11), (4, 4), 5),
    ("5x3", (1, 4, 6), (5, 3), 6),
]


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize(
    "mode,align",
    [("nearest", 0), ("bilinear", 0), ("bilinear", 1)],
    ids=["nearest", "bilinear", "bilinear_align"],
)
@pytest.mark.parametrize("name,shape,scale,seed", UPSAMPLE_CASES, ids=[c[0] for c in UPSAMPLE_CASES])
def test_upsample(kernels, name, shape, scale, seed, mode, align, accumulate):
    op = ir.Upsample(scale, ir.UpsampleMode(mode), bool(align))
    out = op.out_shape([shape])
    rng = np.random.default_rng(seed)
    x, gy = rand(rng, *shape), rand(rng, *out)
    y_ref, (gx_ref,), _ = op_reference(op, [x], {}, gy)
    d = kernels.dims(
        "mt_upsample_dims_t",
        c=shape[0],
        in_h=shape[1],
        in_w=shape[2],
        scale_h=scale[0],
        scale_w=scale[1],
        align_corners=align,
    )
    y = np.full(out, np.nan, np.float32)
    getattr(kernels, f"mt_upsample_{mode}_fw_f32")(d, ptr(x), ptr(y))
    assert_close(y, y_ref, FW, f"upsample {mode} fw")
    bw = getattr(kernels, f"mt_upsample_{mode}_bw_igrad_f32")
    _bw_check(f"upsample {mode} bw", lambda g, a: bw(d, ptr(gy), g, a), shape, gx_ref, accumulate)
