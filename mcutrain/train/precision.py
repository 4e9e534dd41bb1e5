"""Mixed precision: which nodes of a training step run int8 and which float32 (docs/quantization.md).

A quantized graph (an int8 TFLite model, or a float model after post-training quantization) runs its
frozen layers with int8 kernels, TFLite's integer arithmetic exactly; layers the plan updates run in
float32 from float32 master copies of their weights, and so does every op kind without an int8 kernel.
A tensor is stored as its producer computes it (int8: one byte per element); where a consumer needs the
other precision, the training graph converts it (QUANTIZE and DEQUANTIZE steps, exact as TFLite's). The
backward pass is float32 throughout: gradients through a frozen int8 layer use its int8 weights
dequantized on the fly, and straight-through estimates of the rounding.

A frozen node on the gradient path (downstream of an updated layer) runs int8 only when its backward needs
nothing of its int8 forward but a sign mask or nothing at all (add, pools that average, reshape, pad,
concat, ReLU/ReLU6): a frozen conv2d, linear or max pool there runs float32, with its float weights in
flash, because its input gradient needs real weights (or the real argmax).

The plan's ``frozen_precision`` chooses: ``fp32`` (every node float, the quantized graph's real values)
or ``int8`` (the default for quantized graphs; a float graph must be quantized first,
:mod:`mcutrain.train.ptq`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mcutrain.core import ir
from mcutrain.core.op_table import READS_MASK, READS_NOTHING, entry
from mcutrain.train.update_plan import PlanError, UpdatePlan

INT8, FP32 = "int8", "fp32"
PRECISIONS = (FP32, INT8)


@dataclass(frozen=True)
class Precision:
    nodes: Mapping[str, str]  # node -> the precision its forward runs in
    tensors: Mapping[str, str]  # tensor -> the precision it is stored in (its producer's; inputs: float)

    def node_int8(self, node: str) -> bool:
        """Whether ``node``'s forward runs int8."""
        return self.nodes.get(node) == INT8

    def tensor_int8(self, tensor: str) -> bool:
        """Whether ``tensor`` is stored as int8 (converted tensors ``t__s8`` are, ``t__f32`` are not)."""
        if tensor.endswith(("__s8", "__f32")):
            return tensor.endswith("__s8")
        return self.tensors.get(tensor) == INT8

    @property
    def any_int8(self) -> bool:
        return INT8 in self.nodes.values()

    def bytes_per_element(self, tensor: str) -> int:
        return 1 if self.tensors.get(tensor) == INT8 else 4


def int8_capable(graph: ir.Graph, node: ir.Node) -> bool:
    """Whether ``node`` can run int8: its op kind has an int8 kernel for these attributes and every
    tensor and parameter it touches is quantized."""
    e = entry(node.op)
    keys = [*node.inputs, node.name, *(node.param_key(p) for p in node.op.param_names)]
    if e.int8 is None or not all(k in graph.quant for k in keys):
        return False
    return e.int8.supports(graph, node)


def assign(graph: ir.Graph, plan: UpdatePlan) -> Precision:
    """The precision of every node and tensor of ``plan`` on ``graph``."""
    if plan.frozen_precision not in PRECISIONS:
        raise PlanError(f"unknown frozen precision {plan.frozen_precision!r}: one of {', '.join(PRECISIONS)}")
    if plan.frozen_precision == INT8 and not graph.quantized:
        raise PlanError(
            f"{graph.name} is a float model: int8 frozen layers need its quantization first "
            "(mcutrain plan --frozen-precision int8 --calib DATA.npz)"
        )
    updated = {lu.name for lu in plan.trained}
    on_path: dict[str, bool] = {name: False for name, _ in graph.inputs}
    for n in graph.nodes:
        on_path[n.name] = n.name in updated or any(on_path[i] for i in n.inputs)
    nodes = {}
    for n in graph.nodes:
        int8 = plan.frozen_precision == INT8 and not plan.layer(n.name).trains and int8_capable(graph, n)
        if int8 and on_path[n.name]:
            e = entry(n.op)
            int8 = e.backward_reads(n.op) in (READS_NOTHING, READS_MASK) and "bw_wgrad" not in e.kernels
        nodes[n.name] = INT8 if int8 else FP32
    tensors = {name: FP32 for name, _ in graph.inputs}
    for n in graph.nodes:
        # a reshape is a view: its output is stored as its input is
        tensors[n.name] = tensors[n.inputs[0]] if entry(n.op).output_is_view else nodes[n.name]
    return Precision(MappingProxyType(nodes), MappingProxyType(tensors))
