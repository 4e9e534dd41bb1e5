"""Mixed precision: which nodes of a training step run int8 and which float32 (docs/quantization.md).

A quantized graph (an int8 TFLite model, or a float model after post-training quantization) runs the
frozen part of the network that no gradient flows through with int8 kernels, TFLite's integer arithmetic
exactly: every frozen node upstream of (or beside) the updated layers. From the first updated layer on,
the step runs float32: updated layers from float32 master copies of their weights, and frozen layers
downstream of them from their int8 weights dequantized (exact float32 values, float tables in flash),
because their input gradients need real-valued weights and activations. So the backward pass is float32
throughout and exact, with no straight-through estimate anywhere.

A tensor is stored as its producer computes it (int8: one byte per element); where a consumer needs the
other precision, the training graph converts it (QUANTIZE and DEQUANTIZE steps, exact as TFLite's). An
op without weights (activation, pool, add, pad, concat, softmax) runs int8 only where all its inputs are
int8 already: a float tensor is quantized for a layer's int8 weights, never for a cheap op alone. A
reshape is a view and takes its input's precision.

The plan's ``frozen_precision`` chooses: ``fp32`` (every node float, the quantized graph's real values)
or ``int8`` (the default for quantized graphs; a float graph must be quantized first,
:mod:`mcutrain.train.ptq`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mcutrain.core import ir
from mcutrain.core.op_table import entry
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
    nodes: dict[str, str] = {}
    tensors = {name: FP32 for name, _ in graph.inputs}
    for n in graph.nodes:
        on_path[n.name] = n.name in updated or any(on_path[i] for i in n.inputs)
        e = entry(n.op)
        if e.output_is_view:  # a reshape is a view: stored as its input is
            nodes[n.name] = tensors[n.name] = tensors[n.inputs[0]]
            if tensors[n.name] == INT8 and not int8_capable(graph, n):
                raise PlanError(
                    f"{n.name}: a reshape of an int8 tensor must keep its scale and zero point "
                    "(TFLite requires it); re-quantize the model or plan with --frozen-precision fp32"
                )
            continue
        int8 = plan.frozen_precision == INT8 and not on_path[n.name] and int8_capable(graph, n)
        if int8 and not n.op.param_names:  # quantize for a layer's weights, not for a cheap op alone
            int8 = all(tensors[i] == INT8 for i in n.inputs)
        nodes[n.name] = tensors[n.name] = INT8 if int8 else FP32
    return Precision(MappingProxyType(nodes), MappingProxyType(tensors))
