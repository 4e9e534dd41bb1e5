"""Activations, add / copy / accumulate, pad and softmax vs PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from mcutrain.core import ir

from .ckernels import MT_ACT, ptr, u8ptr
from .golden import FW, GRAD, assert_close, op_reference, rand

# --------------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------------

# (fn, alpha, n, seed); inputs include the branch boundaries 0 and 6 exactly
ACT_CASES = [
    ("relu", 0.0, 37, 1),
    ("relu", 0.0, 8, 2),
    ("relu6", 0.0, 45, 3),
    ("relu6", 0.0, 1, 4),
    ("leaky_relu", 0.1, 29, 5),
    ("leaky_relu", 0.01, 16, 6),
    ("sigmoid", 0.0, 33, 7),
    ("tanh", 0.0, 19, 8),
]
ACT_IDS = [f"{c[0]}-n{c[2]}" for c in ACT_CASES]
MASK_CASES = [c for c in ACT_CASES if c[0] in ("relu", "relu6", "leaky_relu")]


def _act_input(n: int, seed: int) -> np.ndarray:
    x = rand(np.random.default_rng(seed), n, scale=4.0)
    special = np.array([0.0, 6.0, -0.0, 6.5, -1e-3, 5.999], np.float32)[:n]
    x[: len(special)] = special
    return x


def _ref(fn: str, alpha: float, x: np.ndarray, gy: np.ndarray):
    y, (gx,), _ = op_reference(ir.Activation(ir.ActFn(fn), alpha), [x], {}, gy)
    return y, gx


@pytest.mark.parametrize("fn,alpha,n,seed", ACT_CASES, ids=ACT_IDS)
def test_activation_fw(kernels, fn, alpha, n, seed):
    x = _act_input(n, seed)
    y_ref, _ = _ref(fn, alpha, x, np.ones_like(x))
    y = np.full(n, np.nan, np.float32)
    kernels.mt_activation_fw_f32(MT_ACT[fn], alpha, n, ptr(x), ptr(y))
    assert_close(y, y_ref, FW, f"{fn} fw")
    kernels.mt_activation_fw_f32(MT_ACT[fn], alpha, n, ptr(x), ptr(x))  # in place
    assert_close(x, y_ref, FW, f"{fn} fw in place")


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("fn,alpha,n,seed", ACT_CASES, ids=ACT_IDS)
def test_activation_bw_from_output(kernels, fn, alpha, n, seed, accumulate):
    x = _act_input(n, seed)
    gy = rand(np.random.default_rng(seed + 50), n)
    _, gx_ref = _ref(fn, alpha, x, gy)
    y = np.empty(n, np.float32)
    kernels.mt_activation_fw_f32(MT_ACT[fn], alpha, n, ptr(x), ptr(y))
    gx0 = rand(np.random.default_rng(seed + 60), n)
    gx = gx0.copy() if accumulate else np.full(n, np.nan, np.float32)
    kernels.mt_activation_bw_f32(MT_ACT[fn], alpha, n, ptr(y), ptr(gy), ptr(gx), accumulate)
    assert_close(gx, (gx0 if accumulate else 0) + gx_ref, GRAD, f"{fn} bw acc={accumulate}")


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("fn,alpha,n,seed", MASK_CASES, ids=[f"{c[0]}-n{c[2]}" for c in MASK_CASES])
def test_activation_mask(kernels, fn, alpha, n, seed, accumulate):
    x = _act_input(n, seed)
    gy = rand(np.random.default_rng(seed + 50), n)
    _, gx_ref = _ref(fn, alpha, x, gy)
    y = np.empty(n, np.float32)
    kernels.mt_activation_fw_f32(MT_ACT[fn], alpha, n, ptr(x), ptr(y))
    nbytes = (n + 7) // 8
    mask = np.full(nbytes + 1, 0xA5, np.uint8)  # one guard byte that must stay untouched
    kernels.mt_activation_mask_f32(MT_ACT[fn], n, ptr(y), u8ptr(mask))
    bits = (y > 0) & (y < 6) if fn == "relu6" else y > 0
    assert mask[:nbytes].tolist() == np.packbits(bits, bitorder="little").tolist(), f"{fn} mask bits"
    assert mask[nbytes] == 0xA5, "mask wrote past (n+7)/8 bytes"
    gx0 = rand(np.random.default_rng(seed + 60), n)
    gx = gx0.copy() if accumulate else np.full(n, np.nan, np.float32)
    kernels.mt_activation_bw_mask_f32(MT_ACT[fn], alpha, n, u8ptr(mask), ptr(gy), ptr(gx), accumulate)
    assert_close(gx, (gx0 if accumulate else 0) + gx_ref, GRAD, f"{fn} bw_mask acc={accumulate}")


def test_activation_boundaries_exact(kernels):
    """PyTorch's choices at the kinks: relu'(0) = 0, hardtanh'(0) = hardtanh'(6) = 0, leaky'(0) = alpha."""
    x = np.array([0.0, 6.0, -2.0, 3.0], np.float32)
    gy = np.ones(4, np.float32)
    for fn, alpha, expected in (
        ("relu", 0.0, [0, 1, 0, 1]),
        ("relu6", 0.0, [0, 0, 0, 1]),
        ("leaky_relu", 0.25, [0.25, 1, 0.25, 1]),
    ):
        y = np.empty(4, np.float32)
        kernels.mt_activation_fw_f32(MT_ACT[fn], alpha, 4, ptr(x), ptr(y))
        gx = np.empty(4, np.float32)
        kernels.mt_activation_bw_f32(MT_ACT[fn], alpha, 4, ptr(y), ptr(gy), ptr(gx), 0)
        assert gx.tolist() == expected, fn
        _, gx_ref = _ref(fn, alpha, x, gy)
        assert gx_ref.tolist() == expected, f"torch {fn}"


@pytest.mark.parametrize("fn", ["relu", "relu6", "leaky_relu"])
def test_activation_propagates_nan_like_torch(kernels, fn):
    """A NaN input stays NaN (as in PyTorch), so the training step's NaN/Inf guard sees it."""
    x = np.array([np.nan, -1.0, 7.0, np.inf, -np.inf], np.float32)
    y = np.empty_like(x)
    kernels.mt_activation_fw_f32(MT_ACT[fn], 0.25, len(x), ptr(x), ptr(y))
    y_ref, _ = _ref(fn, 0.25, x, np.ones_like(x))
    np.testing.assert_array_equal(y, y_ref)
    assert np.isnan(y[0])


# --------------------------------------------------------------------------------------------------
# add, copy, accumulate
# --------------------------------------------------------------------------------------------------


def test_add_and_aliasing(kernels):
    rng = np.random.default_rng(1)
    a, b = rand(rng, 23), rand(rng, 23)
    y = np.full(23, np.nan, np.float32)
    kernels.mt_add_fw_f32(23, ptr(a), ptr(b), ptr(y))
    assert_close(y, a.astype(np.float64) + b, FW, "add")
    a2 = a.copy()
    kernels.mt_add_fw_f32(23, ptr(a2), ptr(b), ptr(a2))  # y aliases a
    assert_close(a2, y, FW, "add y=a")
    b2 = b.copy()
    kernels.mt_add_fw_f32(23, ptr(a), ptr(b2), ptr(b2))  # y aliases b
    assert_close(b2, y, FW, "add y=b")


def test_copy_accumulate_concat(kernels):
    """Concat along channels = copies at channel offsets; its backward = accumulating the slices."""
    rng = np.random.default_rng(2)
    a, b = rand(rng, 2, 3, 4), rand(rng, 3, 3, 4)
    y = np.full((5, 3, 4), np.nan, np.float32)
    kernels.mt_copy_f32(a.size, ptr(a), ptr(y))
    kernels.mt_copy_f32(b.size, ptr(b), y[2:].ctypes.data_as(type(ptr(y))))
    assert np.array_equal(y, np.concatenate([a, b])), "concat by copies"
    gy = rand(rng, 5, 3, 4)
    ga = np.full(a.shape, np.nan, np.float32)
    kernels.mt_accumulate_f32(ga.size, ptr(gy[:2].copy()), ptr(ga), 0)
    assert np.array_equal(ga, gy[:2]), "accumulate=0 copies"
    gb0 = rand(rng, *b.shape)
    gb = gb0.copy()
    kernels.mt_accumulate_f32(gb.size, ptr(gy[2:].copy()), ptr(gb), 1)
    assert_close(gb, gb0.astype(np.float64) + gy[2:], FW, "accumulate=1 adds")
    kernels.mt_copy_f32(gb.size, ptr(gb), ptr(gb))  # src == dst is a no-op
    assert_close(gb, gb0.astype(np.float64) + gy[2:], FW, "copy onto itself")


# --------------------------------------------------------------------------------------------------
# pad
# --------------------------------------------------------------------------------------------------

PAD_CASES = [((2, 3, 4), (1, 0, 2, 3), 0.0), ((1, 5, 2), (2, 1, 3, 1), -1.5), ((3, 2, 2), (0, 0, 0, 0), 0.0)]


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("shape,padding,value", PAD_CASES, ids=["pad_lr", "pad_value", "pad_none"])
def test_pad(kernels, shape, padding, value, accumulate):
    rng = np.random.default_rng(3)
    op = ir.Pad(padding, value)
    out = op.out_shape([shape])
    x, gy = rand(rng, *shape), rand(rng, *out)
    y_ref, (gx_ref,), _ = op_reference(op, [x], {}, gy)
    t, b, l, r = padding
    d = kernels.dims(
        "mt_pad_dims_t",
        c=shape[0],
        in_h=shape[1],
        in_w=shape[2],
        pad_top=t,
        pad_bottom=b,
        pad_left=l,
        pad_right=r,
    )
    y = np.full(out, np.nan, np.float32)
    kernels.mt_pad_fw_f32(d, value, ptr(x), ptr(y))
    assert_close(y, y_ref, FW, "pad fw")
    gx0 = rand(rng, *shape)
    gx = gx0.copy() if accumulate else np.full(shape, np.nan, np.float32)
    kernels.mt_pad_bw_igrad_f32(d, ptr(gy), ptr(gx), accumulate)
    assert_close(gx, (gx0 if accumulate else 0) + gx_ref, GRAD, "pad bw")


# --------------------------------------------------------------------------------------------------
# softmax
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize(
    "n,scale,seed", [(10, 1.0, 1), (1, 1.0, 2), (7, 40.0, 3)], ids=["n10", "n1", "large"]
)
def test_softmax(kernels, n, scale, seed, accumulate):
    rng = np.random.default_rng(seed)
    x, gy = rand(rng, n, scale=scale), rand(rng, n)
    x[0] += 100.0 if scale > 1 else 0.0  # exp overflows without the max shift
    y_ref, (gx_ref,), _ = op_reference(ir.Softmax(), [x], {}, gy)
    y = np.full(n, np.nan, np.float32)
    kernels.mt_softmax_fw_f32(n, ptr(x), ptr(y))
    assert_close(y, y_ref, FW, "softmax fw")
    xi = x.copy()
    kernels.mt_softmax_fw_f32(n, ptr(xi), ptr(xi))
    assert_close(xi, y_ref, FW, "softmax fw in place")
    gx0 = rand(rng, n)
    gx = gx0.copy() if accumulate else np.full(n, np.nan, np.float32)
    kernels.mt_softmax_bw_igrad_f32(n, ptr(y), ptr(gy), ptr(gx), accumulate)
    assert_close(gx, (gx0 if accumulate else 0) + gx_ref, GRAD, "softmax bw")


def test_scale(kernels):
    rng = np.random.default_rng(3)
    x0 = rand(rng, 37)
    x = x0.copy()
    kernels.mt_scale_f32(x.size, ptr(x), 0.25)
    assert_close(x, x0.astype(np.float64) * 0.25, FW, "scale")
