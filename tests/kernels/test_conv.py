"""conv2d and conv_transpose2d kernels vs PyTorch autograd, over output-channel ranges.

Each case is data: input shape, op attributes, the output-channel ranges the op is split into (each range
is one kernel call with compact weight rows, as a channel-subset update emits it), and a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from mcutrain.core import ir

from .ckernels import convt_weight_to_c, ptr, scratch
from .golden import FW, GRAD, assert_close, op_reference, rand


@dataclass(frozen=True)
class ConvCase:
    name: str
    in_shape: tuple[int, int, int]
    out_c: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right (transposed: crop)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    ranges: tuple[tuple[int, int], ...] = ()  # default: one range over all output channels
    seed: int = 0

    def split(self) -> tuple[tuple[int, int], ...]:
        return self.ranges or ((0, self.out_c),)


# fmt: off
CONV2D_CASES = [
    ConvCase("3x3_same_odd", (3, 7, 9), 4, (3, 3), padding=(1, 1, 1, 1), seed=1),
    ConvCase("s2_asym_pad_tflite_same", (4, 9, 8), 6, (3, 3), (2, 2), (0, 1, 1, 0),
             ranges=((0, 2), (2, 6)), seed=2),
    ConvCase("dilation_2x1", (2, 11, 10), 3, (3, 3), padding=(2, 2, 1, 1), dilation=(2, 1), seed=3),
    ConvCase("groups2_split_mid_group", (4, 8, 7), 6, (3, 2), padding=(1, 0, 0, 1), groups=2,
             ranges=((0, 2), (2, 5), (5, 6)), seed=4),
    ConvCase("depthwise_s2", (5, 9, 9), 5, (3, 3), (2, 2), (1, 1, 1, 1), groups=5,
             ranges=((0, 2), (2, 5)), seed=5),
    ConvCase("depthwise_multiplier2", (3, 6, 7), 6, (3, 3), padding=(1, 1, 1, 1), groups=3,
             ranges=((0, 1), (1, 4), (4, 6)), seed=6),
    ConvCase("pointwise_1x1", (8, 5, 5), 4, (1, 1), ranges=((1, 3), (0, 1), (3, 4)), seed=7),
    ConvCase("rect_kernel_s3_pad_beyond", (2, 10, 11), 3, (2, 5), (3, 2), (3, 2, 3, 1), seed=8),
    ConvCase("pad_wider_than_kernel", (2, 5, 6), 2, (2, 2), (1, 1), (3, 0, 0, 3), seed=9),
    ConvCase("dilated_strided_grouped", (6, 13, 12), 4, (3, 3), (2, 2), (2, 1, 2, 2), (2, 2), groups=2,
             seed=10),
    ConvCase("single_pixel", (3, 1, 1), 2, (1, 1), seed=11),
    ConvCase("negative_pad_crops_input", (2, 7, 6), 3, (3, 3), padding=(-1, 0, 1, -2), seed=12),
]

CONVT_CASES = [
    ConvCase("k3_s2_pad1_outpad1", (3, 5, 6), 4, (3, 3), (2, 2), (1, 0, 1, 0), seed=21),
    ConvCase("k4_s2_pad1", (4, 4, 5), 3, (4, 4), (2, 2), (1, 1, 1, 1), ranges=((0, 1), (1, 3)), seed=22),
    ConvCase("outpad_beyond_full", (2, 3, 4), 3, (3, 2), (2, 3), (0, -1, 1, -2), seed=23),
    ConvCase("groups2_dilation2", (4, 5, 5), 6, (3, 3), (2, 1), (1, 2, 0, 1), (2, 2), groups=2,
             ranges=((0, 2), (2, 5), (5, 6)), seed=24),
    ConvCase("depthwise_s2", (5, 4, 4), 5, (3, 3), (2, 2), (1, 0, 1, 0), groups=5,
             ranges=((0, 3), (3, 5)), seed=25),
    ConvCase("rect_k_s1_no_crop", (3, 6, 3), 2, (2, 3), seed=26),
    ConvCase("stride_larger_than_kernel", (2, 4, 3), 2, (2, 2), (3, 3), (0, 0, 1, 0), seed=27),
    ConvCase("extend_top_left", (3, 4, 3), 2, (3, 3), (2, 1), (-1, 1, -2, 0), seed=28),
]
# fmt: on


def _op(case: ConvCase, transposed: bool) -> ir.Op:
    cls = ir.ConvTranspose2d if transposed else ir.Conv2d
    return cls(case.out_c, case.kernel, case.stride, case.padding, case.dilation, case.groups)


class _Setup:
    """Random inputs, the float64 PyTorch reference, and the kernels' dims struct for one case."""

    def __init__(self, kernels, case: ConvCase, transposed: bool) -> None:
        self.k, self.case, self.transposed = kernels, case, transposed
        op = _op(case, transposed)
        cin, h, w = case.in_shape
        self.out_shape = op.out_shape([case.in_shape])
        pshapes = op.param_shapes([case.in_shape])
        rng = np.random.default_rng(case.seed)
        self.x = rand(rng, *case.in_shape)
        w_torch = rand(rng, *pshapes["weight"], scale=0.5)
        self.b = rand(rng, case.out_c)
        self.gy = rand(rng, *self.out_shape)
        y, (gx,), gp = op_reference(op, [self.x], {"weight": w_torch, "bias": self.b}, self.gy)
        self.y_ref, self.gx_ref, self.gb_ref = y, gx, gp["bias"]
        if transposed:  # kernels use the output-major layout
            self.w = convt_weight_to_c(w_torch, case.groups)
            self.gw_ref = convt_weight_to_c(gp["weight"], case.groups)
        else:
            self.w, self.gw_ref = w_torch, gp["weight"]
        self.name = "mt_conv_transpose2d" if transposed else "mt_conv2d"
        struct = "mt_conv_transpose2d_dims_t" if transposed else "mt_conv2d_dims_t"
        self.dims = kernels.dims(
            struct,
            in_c=cin,
            in_h=h,
            in_w=w,
            out_c=case.out_c,
            out_h=self.out_shape[1],
            out_w=self.out_shape[2],
            kernel_h=case.kernel[0],
            kernel_w=case.kernel[1],
            stride_h=case.stride[0],
            stride_w=case.stride[1],
            dilation_h=case.dilation[0],
            dilation_w=case.dilation[1],
            pad_top=case.padding[0],
            pad_left=case.padding[2],
            groups=case.groups,
        )

    def fn(self, ps: str):
        return getattr(self.k, f"{self.name}_{ps}_f32")

    def scratch(self, ps: str):
        """Exactly the bytes the kernel reports it needs."""
        return ptr(scratch(getattr(self.k, f"{self.name}_{ps}_scratch_bytes")(self.dims)))


CASES = [(c, False) for c in CONV2D_CASES] + [(c, True) for c in CONVT_CASES]
IDS = [("convT-" if t else "conv-") + c.name for c, t in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def setup(request, kernels) -> _Setup:
    case, transposed = request.param
    return _Setup(kernels, case, transposed)


def test_fw(setup: _Setup) -> None:
    s = setup
    y = np.full(s.out_shape, np.nan, dtype=np.float32)
    for cb, ce in s.case.split():  # compact weight rows and bias of the range only
        s.fn("fw")(
            s.dims, cb, ce, ptr(s.x), ptr(s.w[cb:ce].copy()), ptr(s.b[cb:ce].copy()), ptr(y), s.scratch("fw")
        )
    assert_close(y, s.y_ref, FW, f"{s.name} fw")


@pytest.mark.parametrize("accumulate", [0, 1])
def test_bw_wgrad(setup: _Setup, accumulate: int) -> None:
    s = setup
    rng = np.random.default_rng(100 + accumulate)
    for cb, ce in s.case.split():
        n = ce - cb
        # overwrite must ignore the previous contents (NaN); accumulate adds to them
        gw0 = rand(rng, n, *s.w.shape[1:]) if accumulate else np.full((n, *s.w.shape[1:]), np.nan, np.float32)
        gb0 = rand(rng, n) if accumulate else np.full(n, np.nan, np.float32)
        gw, gb = gw0.copy(), gb0.copy()
        s.fn("bw_wgrad")(
            s.dims, cb, ce, ptr(s.x), ptr(s.gy), ptr(gw), ptr(gb), accumulate, s.scratch("bw_wgrad")
        )
        base_w, base_b = (gw0, gb0) if accumulate else (0.0, 0.0)
        assert_close(gw, base_w + s.gw_ref[cb:ce], GRAD, f"{s.name} gw[{cb}:{ce}] acc={accumulate}")
        assert_close(gb, base_b + s.gb_ref[cb:ce], GRAD, f"{s.name} gb[{cb}:{ce}] acc={accumulate}")


def test_bw_wgrad_null_outputs(setup: _Setup) -> None:
    """gw NULL = bias-only update; gb NULL = weight only."""
    s = setup
    cb, ce = s.case.split()[-1]
    gb = np.full(ce - cb, np.nan, np.float32)
    s.fn("bw_wgrad")(s.dims, cb, ce, ptr(s.x), ptr(s.gy), None, ptr(gb), 0, s.scratch("bw_wgrad"))
    assert_close(gb, s.gb_ref[cb:ce], GRAD, f"{s.name} bias-only gb")
    gw = np.full((ce - cb, *s.w.shape[1:]), np.nan, np.float32)
    s.fn("bw_wgrad")(s.dims, cb, ce, ptr(s.x), ptr(s.gy), ptr(gw), None, 0, s.scratch("bw_wgrad"))
    assert_close(gw, s.gw_ref[cb:ce], GRAD, f"{s.name} weight-only gw")


@pytest.mark.parametrize("accumulate", [0, 1])
def test_bw_igrad(setup: _Setup, accumulate: int) -> None:
    """Range by range: the first call overwrites (zeroing all of gx) unless accumulating, the others add."""
    s = setup
    gx0 = rand(np.random.default_rng(7), *s.x.shape)
    gx = gx0.copy() if accumulate else np.full(s.x.shape, np.nan, np.float32)
    for i, (cb, ce) in enumerate(s.case.split()):
        acc = 1 if (accumulate or i > 0) else 0
        s.fn("bw_igrad")(
            s.dims, cb, ce, ptr(s.w[cb:ce].copy()), ptr(s.gy), ptr(gx), acc, s.scratch("bw_igrad")
        )
    assert_close(gx, (gx0 if accumulate else 0.0) + s.gx_ref, GRAD, f"{s.name} gx acc={accumulate}")
