"""Training-graph derivation: one training step as an ordered list of kernel calls over named buffers.

From an inference :class:`~mcutrain.core.graph.Graph` and an
:class:`~mcutrain.train.update_plan.UpdatePlan` this derives

* the forward pass (the final softmax is folded into a cross-entropy loss),
* the loss (with an optional zone pooling of a dense prediction),
* a backward pass pruned to the plan: input gradients only where some updated layer lies upstream,
  weight gradients only for updated layers and only for their updated output channels,
* each layer's optimizer update right after its weight gradient (operator reordering: the gradient
  buffer dies at once), after the layer's input gradient so that it still sees the old weights.

What each op's backward reads (its input, its output, or the sign pattern of its output as a 1-bit mask),
which steps run in place and which gradients are views of the output gradient come from the op table
(:mod:`mcutrain.core.op_table`).

The result is plain data consumed by :mod:`mcutrain.train.schedule` (lifetimes, arena offsets, exact bytes),
by the simulator's checks and by the C generator.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from mcutrain.core import ir
from mcutrain.core.int8_scratch import conv2d_s8_scratch_bytes
from mcutrain.core.op_table import READS_INPUT, READS_MASK, READS_OUTPUT, entry
from mcutrain.core.units import F32
from mcutrain.train.precision import Precision, assign
from mcutrain.train.trainable import weight_rows
from mcutrain.train.update_plan import LossKind, PlanError, Update, UpdatePlan


class BufKind(str, enum.Enum):
    IO = "io"  # input sample, target and mask: owned by the caller, not in the arena
    ACTIVATION = "activation"
    MASK = "mask"  # 1-bit ReLU masks
    GRAD = "grad"  # gradient of an activation
    WGRAD = "wgrad"  # gradient of trainable weights and biases
    LOSS = "loss"  # zone-pooled prediction and its gradient
    DEQUANTIZED = "dequantized"  # a saved int8 activation dequantized again for a backward step
    SCRATCH = "scratch"


@dataclass(frozen=True)
class Buffer:
    name: str
    shape: tuple[int, ...]
    kind: BufKind
    nbytes: int
    view_of: str | None = None  # shares the storage of another buffer ...
    view_offset: int = 0  # ... starting this many bytes into it
    node: str | None = None  # the layer it belongs to
    dtype: str = "f32"  # its elements: f32, s8 (an int8 tensor), u8 (mask bits)


class Action(str, enum.Enum):
    FORWARD = "fw"
    MASK = "mask"
    ZONE_FW = "zone_fw"
    LOSS = "loss"
    ZONE_BW = "zone_bw"
    IGRAD = "bw_igrad"
    WGRAD = "bw_wgrad"
    UPDATE = "update"
    QUANTIZE = "quantize"  # a float tensor converted for an int8 consumer (mixed precision)
    DEQUANTIZE = "dequantize"  # an int8 tensor converted for a float consumer


@dataclass(frozen=True)
class Step:
    action: Action
    node: str | None
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    input_index: int = 0  # IGRAD: which input of the node receives the gradient
    accumulate: bool = False  # IGRAD/WGRAD: add into the destination instead of overwriting it
    inplace: bool = False  # the (single) write may share storage with reads[0] when that dies here
    scratch_bytes: int = 0
    backward_via: str = ""  # IGRAD of an activation: "mask" or "output"


@dataclass(frozen=True)
class TrainGraph:
    graph: ir.Graph
    plan: UpdatePlan
    buffers: dict[str, Buffer]
    steps: tuple[Step, ...]
    infer_steps: tuple[Step, ...]
    pred: str  # the tensor the loss reads (logits for cross-entropy)
    saved: frozenset[str] = field(default_factory=frozenset)  # activations read by the backward pass
    precision: Precision | None = None  # int8 / fp32 per node and tensor (mcutrain.train.precision)
    pred_f32: str = ""  # the prediction as the loss reads it (converted from int8 when it is int8)
    infer_out: str = ""  # the tensor inference returns (float)

    def buffer(self, name: str) -> Buffer:
        return self.buffers[name]


def grad_name(t: str) -> str:
    return f"g_{t}"


def mask_name(t: str) -> str:
    return f"mask_{t}"


def converted_name(prec: Precision, t: str, int8: bool) -> str:
    """The tensor a consumer of precision ``int8`` reads for ``t``: ``t`` itself, or its conversion."""
    return t if prec.tensor_int8(t) == int8 else f"{t}__{'s8' if int8 else 'f32'}"


def _saved(op: ir.Op, weight_update: bool) -> tuple[bool, bool]:
    """(needs the op's input, needs the op's output) for the backward of ``op`` (op table)."""
    e = entry(op)
    reads = e.backward_reads(op)
    return reads == READS_INPUT or ("bw_wgrad" in e.kernels and weight_update), reads == READS_OUTPUT


def derive(graph: ir.Graph, plan: UpdatePlan) -> TrainGraph:
    """Derive the training step of ``plan`` on ``graph``."""
    plan.validate(graph)
    if not plan.trained:
        raise PlanError("the plan updates no layer: nothing to train")
    nodes = list(graph.nodes)
    out_name = graph.outputs[0]
    if len(graph.outputs) != 1:
        raise PlanError(f"training needs a single-output model; {graph.name} has {len(graph.outputs)}")
    pred = out_name
    if plan.loss.kind is LossKind.XENT:
        last = graph.node(out_name)
        if isinstance(last.op, ir.Softmax):
            nodes = [n for n in nodes if n.name != out_name]
            pred = last.inputs[0]
        if len(graph.shapes[pred]) != 1:
            raise PlanError(f"cross-entropy needs a vector of logits, the model outputs {graph.shapes[pred]}")
    if plan.loss.zone is not None:
        plan.loss.zone.check(graph.shapes[pred])

    buffers: dict[str, Buffer] = {}

    def add_buf(b: Buffer) -> None:
        assert b.name not in buffers, b.name
        buffers[b.name] = b

    for name, shape in graph.inputs:
        add_buf(Buffer(name, shape, BufKind.IO, math.prod(shape) * F32))
    tshape = (plan.loss.target_numel(graph.shapes[pred]),)
    add_buf(Buffer("target", tshape, BufKind.IO, math.prod(tshape) * F32))
    if plan.loss.masked:
        add_buf(Buffer("target_mask", tshape, BufKind.IO, math.prod(tshape) * F32))

    # which tensors carry a gradient
    updated = {lu.name for lu in plan.trained}
    rg: dict[str, bool] = {name: False for name, _ in graph.inputs}
    for n in nodes:
        rg[n.name] = n.name in updated or any(rg[i] for i in n.inputs)
    if not rg[pred]:
        raise PlanError("no updated layer lies on the path to the model output")

    # which activations the backward pass reads: an int8 input of a float layer stays saved as int8 and
    # is dequantized again right before its backward (1 byte per element kept instead of 4)
    prec = assign(graph, plan)
    saved: set[str] = set()
    for n in nodes:
        if not rg[n.name]:
            continue
        lu = plan.layer(n.name)
        need_in, need_out = _saved(n.op, lu.update is Update.WEIGHT)
        if need_in:
            saved.add(n.inputs[0])
        if need_out:
            saved.add(n.name)

    # forward; a concat's inputs are written straight into their slice of its output (zero-copy concat)
    slots = concat_slots(graph, prec)
    steps: list[Step] = []
    reads_of: dict[str, tuple[str, ...]] = {}  # node -> the tensors its forward reads

    def activation(n: ir.Node) -> Buffer:
        """A node's output: a view of its input (reshape), a slice of a concat, or its own buffer."""
        shape = graph.shapes[n.name]
        view, off = (n.inputs[0], 0) if entry(n.op).output_is_view else slots.get(n.name, (None, 0))
        int8 = prec.tensor_int8(n.name)
        nbytes = math.prod(shape) * (1 if int8 else F32)
        return Buffer(n.name, shape, BufKind.ACTIVATION, nbytes, view, off, n.name, "s8" if int8 else "f32")

    def convert(t: str, int8: bool, into: list[Step]) -> str:
        """``t`` as a consumer of precision ``int8`` reads it: as it is, or converted (once per phase)."""
        name = converted_name(prec, t, int8)
        if name == t:
            return t
        if name not in buffers:
            shape = graph.shapes[t]
            nbytes = math.prod(shape) * (1 if int8 else F32)
            add_buf(Buffer(name, shape, BufKind.ACTIVATION, nbytes, dtype="s8" if int8 else "f32"))
        if all(st.writes != (name,) for st in into):
            into.append(Step(Action.QUANTIZE if int8 else Action.DEQUANTIZE, None, (t,), (name,)))
        return name

    def forward(n: ir.Node, into: list[Step]) -> Step:
        reads = tuple(convert(i, prec.node_int8(n.name), into) for i in n.inputs)
        reads_of[n.name] = reads
        fast = prec.node_int8(n.name) and plan.int8_scratch
        writes, nbytes = (n.name,), _s8_scratch(graph, n, plan.int8_col_bytes) if fast else 0
        if nbytes:  # the kernel's working memory, alive during the step only (a second write)
            name = f"{n.name}__scratch"
            if name not in buffers:
                add_buf(Buffer(name, (nbytes,), BufKind.SCRATCH, nbytes, node=n.name, dtype="s8"))
            writes = (n.name, name)
        inplace = entry(n.op).forward_in_place
        return Step(Action.FORWARD, n.name, reads, writes, inplace=inplace, scratch_bytes=nbytes)

    for n in nodes:
        shape = graph.shapes[n.name]
        add_buf(activation(n))
        if entry(n.op).output_is_view:
            reads_of[n.name] = n.inputs
            continue
        steps.append(forward(n, steps))
        # a backward that reads only the sign pattern of the output keeps it as a 1-bit mask
        masked = entry(n.op).backward_reads(n.op) == READS_MASK and n.name not in saved
        if masked and rg[n.name] and any(rg[i] for i in n.inputs):
            nbytes = _round8((math.prod(shape) + 7) // 8)
            add_buf(Buffer(mask_name(n.name), shape, BufKind.MASK, nbytes, node=n.name))
            steps.append(Step(Action.MASK, n.name, (n.name,), (mask_name(n.name),)))

    # loss, on the float prediction
    gp = grad_name(pred)
    pred_f = convert(pred, False, steps)
    pshape = graph.shapes[pred]
    io_reads = ("target", "target_mask") if plan.loss.masked else ("target",)
    if plan.loss.zone is not None:
        add_buf(Buffer("zones", tshape, BufKind.LOSS, math.prod(tshape) * F32))
        add_buf(Buffer("g_zones", tshape, BufKind.LOSS, math.prod(tshape) * F32))
        steps.append(Step(Action.ZONE_FW, None, (pred_f,), ("zones",)))
        steps.append(Step(Action.LOSS, None, ("zones", *io_reads), ("g_zones",)))
        add_buf(Buffer(gp, pshape, BufKind.GRAD, math.prod(pshape) * F32, node=pred))
        steps.append(Step(Action.ZONE_BW, None, ("g_zones",), (gp,)))
    else:
        add_buf(Buffer(gp, pshape, BufKind.GRAD, math.prod(pshape) * F32, node=pred))
        steps.append(Step(Action.LOSS, None, (pred_f, *io_reads), (gp,)))

    # backward, in reverse forward order
    written: set[str] = {gp}
    grad_consumers: dict[str, int] = {}
    for n in nodes:
        if rg[n.name]:
            for i in n.inputs:
                if rg[i]:
                    grad_consumers[i] = grad_consumers.get(i, 0) + 1

    def backward_input(n: ir.Node) -> str:
        """The input of ``n`` as its backward reads it: an int8 input is dequantized again (once)."""
        t = n.inputs[0]
        if prec.node_int8(n.name) or not prec.tensor_int8(t):
            return reads_of[n.name][0]
        name = f"{t}__f32bw"
        if name not in buffers:
            add_buf(Buffer(name, graph.shapes[t], BufKind.DEQUANTIZED, math.prod(graph.shapes[t]) * F32))
            steps.append(Step(Action.DEQUANTIZE, None, (t,), (name,)))
        return name

    for n in reversed(nodes):
        if not rg[n.name]:
            continue
        g_out = grad_name(n.name)
        lu = plan.layer(n.name)
        for idx, i in enumerate(n.inputs):
            if not rg[i]:
                continue
            g_in = grad_name(i)
            ishape = graph.shapes[i]
            e = entry(n.op)
            sole = grad_consumers[i] == 1 and n.inputs.count(i) == 1
            view = e.grad_view(n.op, idx, graph.in_shapes(n)) * F32 if e.grad_view and sole else None
            if view is not None:
                add_buf(
                    Buffer(
                        g_in,
                        ishape,
                        BufKind.GRAD,
                        math.prod(ishape) * F32,
                        view_of=g_out,
                        view_offset=view,
                        node=i,
                    )
                )
                written.add(g_in)
                continue
            if g_in not in buffers:
                add_buf(Buffer(g_in, ishape, BufKind.GRAD, math.prod(ishape) * F32, node=i))
            reads: tuple[str, ...] = (g_out,)
            what = e.backward_reads(n.op)
            if what == READS_MASK and mask_name(n.name) not in buffers:
                what = READS_OUTPUT  # the output is kept for another reason: no mask
            via = what if f"bw_igrad:{what}" in e.kernels else ""  # a kernel variant per source
            if what == READS_MASK:
                reads = (g_out, mask_name(n.name))
            elif what == READS_OUTPUT:
                reads = (g_out, n.name)
            elif what == READS_INPUT:
                reads = (g_out, backward_input(n))
            acc = g_in in written
            elementwise = e.backward_in_place and not acc
            steps.append(
                Step(
                    Action.IGRAD,
                    n.name,
                    reads,
                    (g_in,),
                    input_index=idx,
                    accumulate=acc,
                    inplace=elementwise,
                    backward_via=via,
                )
            )
            written.add(g_in)
        if lu.trains:
            w = graph.param(n.name, "weight")
            rows = weight_rows(n.op, w.shape)
            writes = []
            if lu.update is Update.WEIGHT:
                gw = f"gw_{n.name}"
                shape = (lu.channels, w.size // rows)
                add_buf(Buffer(gw, shape, BufKind.WGRAD, math.prod(shape) * F32, node=n.name))
                writes.append(gw)
            if lu.bias:
                gb = f"gb_{n.name}"
                add_buf(
                    Buffer(
                        gb,
                        (graph.shapes[n.name][0],),
                        BufKind.WGRAD,
                        graph.shapes[n.name][0] * F32,
                        node=n.name,
                    )
                )
                writes.append(gb)
            reads = (g_out, backward_input(n)) if lu.update is Update.WEIGHT else (g_out,)
            steps.append(Step(Action.WGRAD, n.name, reads, tuple(writes)))
            if plan.batch == 1:
                steps.append(Step(Action.UPDATE, n.name, tuple(writes), ()))
    if plan.batch > 1:  # accumulate over the mini-batch; updates run once per `batch` samples
        for n in nodes:
            if plan.layer(n.name).trains:
                ws = tuple(b for b in (f"gw_{n.name}", f"gb_{n.name}") if b in buffers)
                steps.append(Step(Action.UPDATE, n.name, ws, ()))

    for n in graph.nodes:
        if n.name not in buffers:  # a final softmax that cross-entropy folded away in training
            add_buf(activation(n))
    infer: list[Step] = []
    for n in graph.nodes:
        if not entry(n.op).output_is_view:
            infer.append(forward(n, infer))
    infer_out = convert(out_name, False, infer)
    return TrainGraph(
        graph, plan, buffers, tuple(steps), tuple(infer), pred, frozenset(saved), prec, pred_f, infer_out
    )


def _s8_scratch(graph: ir.Graph, n: ir.Node, col_bytes: int) -> int:
    """Bytes of scratch the int8 forward of ``n`` takes (``mt_conv2d_fw_s8_scratch_bytes`` of a build with
    ``MT_S8_COL_BYTES`` = ``col_bytes``: the working memory of the Cortex-M DSP conv2d, the same on every
    target); 0 for the other int8 kernels."""
    if not isinstance(n.op, ir.Conv2d):
        return 0
    dims = entry(n.op).dims
    assert dims is not None
    return conv2d_s8_scratch_bytes(dims.of(n.op, graph.in_shapes(n), graph.shapes[n.name]), col_bytes)


def s8_scratches(graph: ir.Graph, col_bytes: int) -> tuple[int, ...]:
    """The DSP scratch of every conv2d of ``graph`` under the column budget ``col_bytes``, in node order:
    two budgets with the same tuple build the same kernels' runs."""
    return tuple(_s8_scratch(graph, n, col_bytes) for n in graph.nodes if isinstance(n.op, ir.Conv2d))


def concat_slots(graph: ir.Graph, prec: Precision) -> dict[str, tuple[str, int]]:
    """Tensors that live inside a concat's output: tensor -> (concat, byte offset). A tensor qualifies
    when a node (not a reshape) produces it, it is no graph output, it enters one concat once, and it is
    stored as the concat's output (the same precision; int8: the same scale and zero point); its producer
    then writes the slice directly and the concat copies nothing."""
    producers = {n.name: n for n in graph.nodes}
    slots: dict[str, tuple[str, int]] = {}
    for n in graph.nodes:
        if not isinstance(n.op, ir.Concat):
            continue
        off = 0
        for i in n.inputs:
            p = producers.get(i)
            int8 = prec.tensor_int8(n.name)
            same = prec.tensor_int8(i) == int8 and (not int8 or graph.quant.get(i) == graph.quant.get(n.name))
            if (
                p is not None
                and not entry(p.op).output_is_view
                and i not in slots
                and i not in graph.outputs
                and n.inputs.count(i) == 1
                and same
            ):
                slots[i] = (n.name, off)
            off += math.prod(graph.shapes[i]) * (1 if int8 else F32)
    return slots


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8
