"""A mixed-precision forward pass exactly as the generated C runs it (docs/quantization.md).

Nodes that :mod:`mcutrain.train.precision` puts in int8 compute their output integers with the op
table's int8 semantics (:class:`~mcutrain.core.op_spec.Int8Spec`: TFLite's integer arithmetic, bit for
bit the C kernels' result), one sample at a time, from int8 inputs and the graph's int8 weights and
int32 biases. Float32 nodes run the op table's PyTorch forward. Between the two, tensors convert as the
training graph converts them: ``QUANTIZE`` (``round(x / scale) + zero_point`` in float32, saturated) where
an int8 node reads a float tensor, ``DEQUANTIZE`` (``scale * (q - zero_point)`` in float32) where a float
node reads an int8 one.

No gradient flows through an int8 node (:mod:`mcutrain.train.precision` runs int8 only what lies
upstream of or beside the updated layers), so int8 outputs enter the autograd graph as constants: the
simulator's loss and gradients are the C step's, and to the round-off bound of the self-test
(:mod:`mcutrain.train.roundoff`) an int8 output is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mcutrain.core import int8_params as q8
from mcutrain.core import int8_semantics as s8
from mcutrain.core import ir
from mcutrain.core.op_table import entry, forward_op
from mcutrain.train.precision import Precision


class MixedForward:
    """Runs ``graph`` in the precision ``prec`` assigns; the int8 parameters are computed once."""

    def __init__(self, graph: ir.Graph, prec: Precision) -> None:
        self.graph = graph
        self.prec = prec
        self._q8: dict[str, Any] = {}
        self._ints: dict[str, dict[str, np.ndarray | None]] = {}
        for n in graph.nodes:
            if prec.node_int8(n.name):
                spec = entry(n.op).int8
                assert spec is not None
                self._q8[n.name] = spec.params(graph, n)
                self._ints[n.name] = {p: graph.qvalues.get(n.param_key(p)) for p in n.op.param_names}

    def quantize(self, x: torch.Tensor, tensor: str) -> np.ndarray:
        """``QUANTIZE`` of a float tensor into ``tensor``'s int8 quantization (``mt_quantize_fw_s8``)."""
        q = q8.quantize_q8(self.graph.quant[tensor])
        return s8.quantize_s8(x.detach().to(torch.float32).numpy(), q)

    def dequantize(self, v: np.ndarray, tensor: str, dtype: torch.dtype) -> torch.Tensor:
        """``DEQUANTIZE`` of ``tensor``'s integers (``mt_dequantize_fw_s8``: float32)."""
        q = q8.dequantize_q8(self.graph.quant[tensor])
        return torch.from_numpy(s8.dequantize_s8(v, q)).to(dtype)

    def run(
        self,
        x: torch.Tensor,
        params: Mapping[str, Mapping[str, torch.Tensor]],
        keep: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Run a batch ``x`` of the single input. ``params``: the float nodes' parameters by node name
        (in the float dtype). Returns the outputs (or every tensor, with ``keep``) as float."""
        graph, prec = self.graph, self.prec
        ((name, shape),) = graph.inputs
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"input {name!r} expects per-sample shape {shape}, got {tuple(x.shape[1:])}")
        env: dict[str, torch.Tensor] = {name: x}
        ints: dict[str, np.ndarray] = {}
        for n in graph.nodes:
            if not prec.node_int8(n.name):
                env[n.name] = forward_op(n.op, [env[i] for i in n.inputs], params.get(n.name, {}))
                continue
            xq = [ints[i] if prec.tensor_int8(i) else self.quantize(env[i], i) for i in n.inputs]
            ints[n.name] = y = self._int8_batch(n, xq)
            env[n.name] = self.dequantize(y, n.name, x.dtype)
        return env if keep else {o: env[o] for o in graph.outputs}

    def _int8_batch(self, node: ir.Node, xs: list[np.ndarray]) -> np.ndarray:
        spec = entry(node.op).int8
        assert spec is not None
        q, p = self._q8[node.name], self._ints[node.name]
        return np.stack([spec.forward(node, [x[b] for x in xs], p, q) for b in range(len(xs[0]))])
