"""The L1 tile of an int8 forward on the PULP cluster (``mt_cl_conv2d_fw_s8``, ``mt_cl_linear_fw_s8`` of
``firmware/pulp/mt_cl_conv_s8.c``), counted in bytes exactly as the C lays it out: int8 activations and
weights (1 B per element), int32 biases, the params struct's per-channel arrays (conv2d: int32 multiplier
and shift; linear: uint64 significand and int32 exponent), each region rounded up to 8 bytes.

A unit is one output channel when ``groups == 1`` (every tile reads all of ``x``: staged in L1 once when it
fits with a channel per core) and one group otherwise (depthwise: the group's input channels move into L1
with the tile, so the input is always in L1). See docs/gap9.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcutrain.core import ir
from mcutrain.emit.call_records import KernelCall

if TYPE_CHECKING:
    from mcutrain.emit.pulp import Tile

_REGIONS = 6  # regions rounded up to 8 bytes besides the staged input: slack the tile choice leaves


def _r8(n: int) -> int:
    return (n + 7) & ~7


def s8_tile(graph: ir.Graph, node: ir.Node, call: KernelCall, budget: int, cores: int) -> Tile | None:
    """The tile of an int8 conv2d / linear forward call, or None when it stays on the fabric controller (a
    grouped convolution whose channel range does not follow group boundaries)."""
    from mcutrain.emit.pulp import Tile, choose_tile

    op, ins, out = node.op, graph.in_shapes(node), graph.shapes[node.name]
    a, b = int(call.arg("co_begin").value or 0), int(call.arg("co_end").value or 0)
    if isinstance(op, ir.Linear):
        upc, cin, plane, oplane, k, qb, grouped = 1, ins[0][0], 1, 1, ins[0][0], 12, False
    elif isinstance(op, ir.Conv2d):
        grouped = op.groups > 1
        cin_g, cout_g = ins[0][0] // op.groups, out[0] // op.groups
        upc, cin = (cout_g, cin_g) if grouped else (1, ins[0][0])
        plane, oplane, qb = ins[0][1] * ins[0][2], out[1] * out[2], 8
        k = cin_g * op.kernel[0] * op.kernel[1]
        if a % upc or b % upc:
            return None
    else:
        return None
    # per unit: params, bias, weight rows and output channels of its channels (+ its input if grouped)
    per = upc * (qb + 4 + k + oplane) + (cin * plane if grouped else 0)
    shared = 0 if grouped else cin * plane
    what = f"int8 fw of {node.name}"
    t = choose_tile(shared, per, (b - a) // upc, budget - _REGIONS * 8, cores, what)
    return Tile(t.units, t.stage or grouped, s8_l1_bytes(t.units, t.stage, grouped, upc, cin, plane,
                                                         oplane, k, qb), t.count)  # fmt: skip


def s8_l1_bytes(
    tile: int, stage: bool, grouped: bool, upc: int, cin: int, plane: int, oplane: int, k: int, qb: int
) -> int:
    """The bytes ``mt_cl_*_fw_s8``'s task claims for a tile of ``tile`` units (its ``bytes``)."""
    nc, q0 = tile * upc, 4 if qb == 8 else 8
    xs = _r8(cin * plane) if stage and not grouped else 0
    gx = _r8(tile * cin * plane) if grouped else 0
    return xs + _r8(nc * q0) + _r8(nc * (qb - q0)) + _r8(nc * 4) + _r8(nc * k) + gx + _r8(nc * oplane)
