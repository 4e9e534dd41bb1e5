"""The working memory of the Cortex-M DSP int8 conv2d (``firmware/runtime/src/mt_s8_dsp.h``), as the C
computes it, so that the planner can give each int8 conv2d forward exactly its scratch: the same bytes on
every target (the plan does not know the target; docs/quantization.md, "Cortex-M DSP kernels"), and the
column budget that sizes it (``MT_S8_COL_BYTES``; "The column budget").
"""

from __future__ import annotations

from collections.abc import Mapping

#: The Cortex-M DSP conv2d's budget of column tiles (``MT_S8_COL_BYTES`` in ``mt_s8_dsp.h``), and the
#: budgets a plan or a build may ask for instead (UpdatePlan.int8_col_bytes).
S8_COL_BYTES = 4096
MIN_COL_BYTES, MAX_COL_BYTES = 64, 65536
#: The budgets ``--int8-col-bytes auto`` tries (docs/quantization.md, "The column budget").
AUTO_COL_BYTES = (8192, 16384, 32768, 65536)


def col_bytes_problem(n: int) -> str | None:
    """Why ``n`` cannot be a column budget, or None when it can."""
    if MIN_COL_BYTES <= n <= MAX_COL_BYTES and n % 16 == 0:
        return None
    return f"int8 column budget: a multiple of 16 from {MIN_COL_BYTES} to {MAX_COL_BYTES} bytes, got {n}"


def _dw_rowwise(d: Mapping[str, int]) -> bool:
    """``mt_s8_dw_rowwise``: a depthwise convolution the DSP row loop runs as it is (3-wide kernels)."""
    return (
        d["groups"] == d["in_c"]
        and d["kernel_w"] == 3
        and d["dilation_w"] == 1
        and d["dilation_h"] == 1
        and d["stride_w"] in (1, 2)
        and d["pad_left"] >= 0
        and d["pad_top"] >= 0
    )


def _dw_swap(d: Mapping[str, int]) -> dict[str, int]:
    """``mt_s8_dw_swap``: ``d`` with rows and columns exchanged."""
    pairs = ("in_h", "in_w"), ("out_h", "out_w"), ("kernel_h", "kernel_w"), ("stride_h", "stride_w")
    pairs += ("dilation_h", "dilation_w"), ("pad_top", "pad_left")
    t = dict(d)
    for a, b in pairs:
        t[a], t[b] = d[b], d[a]
    return t


def _dw_plane_bytes(d: Mapping[str, int]) -> int:
    """``mt_s8_dw_rows(d) * mt_s8_dw_row_bytes(d)``: the padded plane of the row loop."""
    row = ((d["out_w"] + 3) // 4 * 4 * d["stride_w"] + 8 + 3) // 4 * 4
    return ((d["out_h"] - 1) * d["stride_h"] + d["kernel_h"]) * row


def conv2d_s8_scratch_bytes(d: Mapping[str, int], col_bytes: int = S8_COL_BYTES) -> int:
    """``mt_conv2d_fw_s8_scratch_bytes`` of the dims struct ``d`` (field -> value), as the C computes it:
    the working memory of the Cortex-M DSP path (``firmware/runtime/src/mt_s8_dsp.h``), the same on every
    target (0 for weight rows of 16,448 taps or more, which the reference runs). Depthwise with 3-wide
    kernels: the input plane padded with the zero point; on planes less than 8 outputs wide and taller
    than wide with 3-high kernels, the transposed plane; otherwise the column
    tiles of a run of output positions (a multiple of 4, at most ``col_bytes`` of tiles, ``MT_S8_COL_BYTES``
    of the build, unless one tile of 4 is larger) and one weight row, each of the weight row's taps rounded
    up to 4, as int16."""
    if d["in_c"] // d["groups"] * d["kernel_h"] * d["kernel_w"] >= (1 << 29) // 32640:
        return 0  # the taps' sums could overflow the doubled int32 sums: the reference runs
    t = _dw_swap(d)
    if d["out_w"] < 8 and d["out_h"] > d["out_w"] and t["kernel_h"] <= 3 and _dw_rowwise(t):
        return _dw_plane_bytes(t)
    if _dw_rowwise(d):
        return _dw_plane_bytes(d)
    taps = (d["in_c"] // d["groups"] * d["kernel_h"] * d["kernel_w"] + 3) // 4 * 4
    most = col_bytes // (2 * taps) // 4 * 4
    every = (d["out_h"] * d["out_w"] + 3) // 4 * 4
    positions = every if every < most else max(most, 4)
    return 2 * (positions + 1) * taps
