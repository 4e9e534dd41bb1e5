"""linear and channel_affine kernels vs PyTorch autograd, over output-channel ranges."""

from __future__ import annotations

import numpy as np
import pytest

from mcutrain.core import ir

from .ckernels import ptr, scratch
from .golden import FW, GRAD, assert_close, op_reference, rand

# (name, in_features, out_features, ranges, seed)
LINEAR_CASES = [
    ("17to5", 17, 5, ((0, 5),), 1),
    ("1to3", 1, 3, ((0, 1), (1, 3)), 2),
    ("64to10_split", 64, 10, ((0, 3), (3, 4), (4, 10)), 3),
    ("300to7", 300, 7, ((5, 7), (0, 5)), 4),
]

# (name, (C, H, W), ranges, seed); a vector is (C, 1, 1)
AFFINE_CASES = [
    ("5x4x3", (5, 4, 3), ((0, 5),), 11),
    ("vector", (6, 1, 1), ((0, 2), (2, 6)), 12),
    ("7x5x5_split", (7, 5, 5), ((2, 4), (0, 2), (4, 7)), 13),
]


def _grads_check(name, fw, wgrad, igrad, x, w, b, gy, y_ref, gx_ref, gw_ref, gb_ref, ranges, out_shape):
    """Forward per range into one y; wgrad per range (both accumulate modes); igrad summed over ranges."""
    y = np.full(out_shape, np.nan, np.float32)
    for cb, ce in ranges:
        fw(cb, ce, ptr(x), ptr(w[cb:ce].copy()), ptr(b[cb:ce].copy()), ptr(y))
    assert_close(y, y_ref, FW, f"{name} fw")
    rng = np.random.default_rng(5)
    for acc in (0, 1):
        for cb, ce in ranges:
            gw0 = (
                rand(rng, ce - cb, *w.shape[1:])
                if acc
                else np.full((ce - cb, *w.shape[1:]), np.nan, np.float32)
            )
            gb0 = rand(rng, ce - cb) if acc else np.full(ce - cb, np.nan, np.float32)
            gw, gb = gw0.copy(), gb0.copy()
            wgrad(cb, ce, ptr(x), ptr(gy), ptr(gw), ptr(gb), acc)
            assert_close(gw, (gw0 if acc else 0) + gw_ref[cb:ce], GRAD, f"{name} gw[{cb}:{ce}] acc={acc}")
            assert_close(gb, (gb0 if acc else 0) + gb_ref[cb:ce], GRAD, f"{name} gb[{cb}:{ce}] acc={acc}")
        gb = np.full(ranges[0][1] - ranges[0][0], np.nan, np.float32)
        wgrad(*ranges[0], ptr(x), ptr(gy), None, ptr(gb), 0)  # bias-only update
        assert_close(gb, gb_ref[slice(*ranges[0])], GRAD, f"{name} bias-only gb")
        gx0 = rand(rng, *x.shape)
        gx = gx0.copy() if acc else np.full(x.shape, np.nan, np.float32)
        for i, (cb, ce) in enumerate(ranges):
            igrad(cb, ce, ptr(w[cb:ce].copy()), ptr(gy), ptr(gx), 1 if acc or i else 0)
        assert_close(gx, (gx0 if acc else 0) + gx_ref, GRAD, f"{name} gx acc={acc}")


@pytest.mark.parametrize("name,nin,nout,ranges,seed", LINEAR_CASES, ids=[c[0] for c in LINEAR_CASES])
def test_linear(kernels, name, nin, nout, ranges, seed):
    k = kernels
    rng = np.random.default_rng(seed)
    x, w, b, gy = rand(rng, nin), rand(rng, nout, nin, scale=0.3), rand(rng, nout), rand(rng, nout)
    y_ref, (gx_ref,), gp = op_reference(ir.Linear(nout), [x], {"weight": w, "bias": b}, gy)
    d = k.dims("mt_linear_dims_t", in_features=nin, out_features=nout)

    def sc(ps):  # exactly the scratch each pass reports
        return ptr(scratch(getattr(k, f"mt_linear_{ps}_scratch_bytes")(d)))

    _grads_check(
        f"linear {name}",
        lambda cb, ce, *a: k.mt_linear_fw_f32(d, cb, ce, *a, sc("fw")),
        lambda cb, ce, *a: k.mt_linear_bw_wgrad_f32(d, cb, ce, *a, sc("bw_wgrad")),
        lambda cb, ce, *a: k.mt_linear_bw_igrad_f32(d, cb, ce, *a, sc("bw_igrad")),
        x,
        w,
        b,
        gy,
        y_ref,
        gx_ref,
        gp["weight"],
        gp["bias"],
        ranges,
        (nout,),
    )


@pytest.mark.parametrize("name,shape,ranges,seed", AFFINE_CASES, ids=[c[0] for c in AFFINE_CASES])
def test_channel_affine(kernels, name, shape, ranges, seed):
    k = kernels
    rng = np.random.default_rng(seed)
    c = shape[0]
    x, w, b, gy = rand(rng, *shape), rand(rng, c), rand(rng, c), rand(rng, *shape)
    y_ref, (gx_ref,), gp = op_reference(ir.ChannelAffine(), [x], {"weight": w, "bias": b}, gy)
    d = k.dims("mt_channel_affine_dims_t", c=shape[0], h=shape[1], w=shape[2])
    _grads_check(
        f"channel_affine {name}",
        lambda cb, ce, *a: k.mt_channel_affine_fw_f32(d, cb, ce, *a),
        lambda cb, ce, *a: k.mt_channel_affine_bw_wgrad_f32(d, cb, ce, *a),
        lambda cb, ce, *a: k.mt_channel_affine_bw_igrad_f32(d, cb, ce, *a),
        x,
        w,
        b,
        gy,
        y_ref,
        gx_ref,
        gp["weight"],
        gp["bias"],
        ranges,
        shape,
    )


def test_channel_affine_in_place(kernels):
    rng = np.random.default_rng(3)
    x, w, b = rand(rng, 4, 3, 3), rand(rng, 4), rand(rng, 4)
    expected = x * w[:, None, None] + b[:, None, None]
    d = kernels.dims("mt_channel_affine_dims_t", c=4, h=3, w=3)
    kernels.mt_channel_affine_fw_f32(d, 0, 4, ptr(x), ptr(w), ptr(b), ptr(x))
    assert_close(x, expected, FW, "channel_affine in place")
