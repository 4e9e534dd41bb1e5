"""The op table: for every IR op kind, in one entry, everything the later stages need to know about it.

* ``forward``: its semantics in PyTorch (batched), which the simulator, the frontends' checks, the
  planner's scores and the kernel tests' references run;
* ``backward_reads``: what its input-gradient pass reads besides the output gradient (its input, its
  output, or only the sign pattern of its output, kept as a 1-bit mask) — training derivation
  (:mod:`mcutrain.train.derive`) keeps exactly those activations alive;
* ``forward_in_place``, ``backward_in_place``, ``output_is_view`` and ``grad_view``: whether its output
  may overwrite its input (and its input gradient the output gradient), whether it computes nothing (a
  reshape), and whether the gradient of an input is a plain view (an offset) into the output gradient;
* ``dims``: the C dims struct its kernels take, and how its attributes fill it;
* ``int8``: its int8 forward where it has one (:class:`~mcutrain.core.op_spec.Int8Spec`: TFLite's integer
  arithmetic as a C kernel, its integer parameters and the same in NumPy; :mod:`mcutrain.train.precision`);
* ``kernels``: its C kernel per pass (``fw``, ``bw_igrad``, ``bw_wgrad``, ``mask``; a variant after a
  colon, e.g. ``fw:bilinear``), whose parameters the code generator binds by name
  (:mod:`mcutrain.emit.calls`); ``args`` names the role of a parameter whose name alone does not say it.

Adding an op kind: its attribute class in :mod:`mcutrain.core.ops`, its kernels in ``firmware/runtime``,
one entry and a frontend rule (docs/design.md, "Adding an op"). The entries are in
:mod:`mcutrain.core.op_entries_layers` (layers with weights) and :mod:`mcutrain.core.op_entries_tensors`
(everything else); their types and shared pieces in :mod:`mcutrain.core.op_spec`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mcutrain.core import ops
from mcutrain.core.kernels import DimsStruct, Kernel
from mcutrain.core.op_entries_layers import LAYER_ENTRIES
from mcutrain.core.op_entries_tensors import TENSOR_ENTRIES
from mcutrain.core.op_spec import READS_INPUT, READS_MASK, READS_NOTHING, READS_OUTPUT, Int8Spec, OpEntry

__all__ = [
    "OP_TABLE", "READS_INPUT", "READS_MASK", "READS_NOTHING", "READS_OUTPUT", "Int8Spec", "OpEntry",
    "dims_structs", "entry", "forward_op", "int8_kernels", "op_kernels",
]  # fmt: skip

_ENTRIES = (*LAYER_ENTRIES, *TENSOR_ENTRIES)

#: op attribute class -> its entry; every op kind of :data:`mcutrain.core.ops.OP_TYPES` has one.
OP_TABLE: dict[type[ops.Op], OpEntry] = {e.op: e for e in _ENTRIES}
assert set(OP_TABLE) == set(ops.OP_TYPES.values()), "every op kind needs an op-table entry"


def entry(op: ops.Op | type[ops.Op]) -> OpEntry:
    return OP_TABLE[op if isinstance(op, type) else type(op)]


def forward_op(op: ops.Op, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The op's output for a batch (its PyTorch semantics)."""
    return entry(op).forward(op, xs, p)


def op_kernels() -> list[Kernel]:
    """Every kernel an op kind calls (in table order)."""
    return [kern for e in _ENTRIES for kern in e.kernels.values()]


def dims_structs() -> list[DimsStruct]:
    """Every dims struct of the table (each once)."""
    return list({e.dims.ctype: e.dims for e in _ENTRIES if e.dims is not None}.values())


def int8_kernels() -> list[Kernel]:
    """Every int8 forward kernel of the table (each once)."""
    out = {kern.name: kern for e in _ENTRIES if e.int8 is not None for kern in e.int8.kernels.values()}
    return list(out.values())
