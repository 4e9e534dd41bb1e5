"""The exact memory model of one training step.

Every number here is derived from the same :class:`~mcutrain.train.derive.TrainGraph` and
:class:`~mcutrain.train.schedule.StepSchedule` that the C generator lays out, so planned bytes are generated
bytes. RAM is the static part (trainable weights, optimizer state, input/label buffers, persistent
gradients when accumulating over a mini-batch, the stack reserve) plus the arena. The breakdown by
category describes the moment of peak use and adds up exactly to ``peak_ram_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcutrain.core import ir
from mcutrain.core.int8_tables import int8_data
from mcutrain.train.app_memory import link_memory
from mcutrain.train.derive import BufKind, TrainGraph, derive
from mcutrain.train.schedule import StepSchedule, schedule
from mcutrain.train.trainable import trainable_bytes
from mcutrain.train.update_plan import Update, UpdatePlan

#: Categories of the breakdown, in display order.
CATEGORIES = (
    "trainable_weights",
    "optimizer_state",
    "gradients",
    "saved_activations",
    "relu_masks",
    "forward_working",
    "backward_working",
    "kernel_scratch",
    "io_buffers",
    "arena_fragmentation",
    "serial_link",
    "stack_reserve",
)


@dataclass(frozen=True)
class LayerMemory:
    name: str
    kind: str
    update: str
    trainable_bytes: int
    frozen_bytes: int
    optimizer_bytes: int
    gradient_bytes: int
    saved_input_bytes: int
    precision: str = "fp32"  # its forward: int8 (frozen, integer kernels) or fp32


@dataclass(frozen=True)
class MemoryReport:
    peak_ram_bytes: int
    flash_bytes: int  # parameter tables: frozen float weights and biases, int8 layers' integer tables
    # (core/int8_tables); code and small structs come from the linker
    arena_bytes: int
    arena_lower_bound: int
    static_ram_bytes: int
    categories: dict[str, int]  # adds up to peak_ram_bytes
    layers: tuple[LayerMemory, ...]
    infer_arena_bytes: int
    schedule: StepSchedule = field(repr=False)
    train_graph: TrainGraph = field(repr=False)
    int8_bytes: dict[str, int] = field(default_factory=dict)  # of each category, the bytes of int8 tensors

    def to_dict(self) -> dict:
        return {
            "peak_ram_bytes": self.peak_ram_bytes,
            "flash_bytes": self.flash_bytes,
            "arena_bytes": self.arena_bytes,
            "arena_lower_bound_bytes": self.arena_lower_bound,
            "static_ram_bytes": self.static_ram_bytes,
            "infer_arena_bytes": self.infer_arena_bytes,
            "memory": dict(self.categories),
            "int8_bytes": dict(self.int8_bytes),
            "layers_memory": [vars(lm) for lm in self.layers],
        }


def analyze(graph: ir.Graph, plan: UpdatePlan) -> MemoryReport:
    """Derive, schedule and account one training step of ``plan`` on ``graph``."""
    tg = derive(graph, plan)
    return report(tg, schedule(tg))


def report(tg: TrainGraph, sched: StepSchedule) -> MemoryReport:
    graph, plan = tg.graph, tg.plan
    prec = tg.precision
    per_layer = trainable_bytes(graph, plan)
    trainable = sum(t for t, _ in per_layer.values())
    int8_nodes = [n for n in graph.nodes if prec is not None and prec.node_int8(n.name)]
    flash = sum(f for n, (_, f) in per_layer.items() if prec is None or not prec.node_int8(n))
    flash += sum(int8_data(graph, n).nbytes for n in int8_nodes)
    flash += sum(int(graph.params[k].nbytes) for k in graph.params if k.rsplit(".", 1)[0] not in per_layer)
    opt_state = trainable * plan.optimizer.kind.state_per_param
    io = sum(b.nbytes for b in tg.buffers.values() if b.kind is BufKind.IO)
    persistent_grads = 0
    if plan.batch > 1:
        persistent_grads = sum(b.nbytes for b in tg.buffers.values() if b.kind is BufKind.WGRAD)

    cats = dict.fromkeys(CATEGORIES, 0)
    cats["trainable_weights"] = trainable
    cats["optimizer_state"] = opt_state
    cats["io_buffers"] = io
    cats["gradients"] = persistent_grads
    cats["stack_reserve"] = plan.stack_reserve_bytes
    if plan.app is not None:  # the serial-link firmware's buffers, counted at plan time (--app link)
        cats["serial_link"] = sum(link_memory(graph, plan, plan.app).values())
    static = trainable + opt_state + io + persistent_grads + plan.stack_reserve_bytes + cats["serial_link"]

    tr = sched.train
    members: dict[str, list[str]] = {}
    for name, root in tr.storage_of.items():
        members.setdefault(root, []).append(name)
    int8 = dict.fromkeys(CATEGORIES, 0)
    for root in tr.live_at_peak:
        cat = _category(tg, members[root])
        cats[cat] += tr.storage_bytes[root]
        if tg.buffers[root].dtype == "s8":
            int8[cat] += tr.storage_bytes[root]
    arena = sched.arena_bytes
    cats["arena_fragmentation"] = arena - tr.lower_bound

    layers = []
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        t, f = per_layer[node.name]
        grads = sum(tg.buffers[b].nbytes for b in (f"gw_{node.name}", f"gb_{node.name}") if b in tg.buffers)
        saved_in = tg.buffers[node.inputs[0]].nbytes if lu.update is Update.WEIGHT else 0
        if node.inputs[0] in {n for n, _ in graph.inputs}:
            saved_in = 0  # the caller's input buffer, counted under io_buffers
        layers.append(
            LayerMemory(
                node.name,
                node.op.kind,
                lu.describe(graph.shapes[node.name][0]),
                t,
                f,
                t * plan.optimizer.kind.state_per_param,
                grads,
                saved_in,
                "int8" if prec is not None and prec.node_int8(node.name) else "fp32",
            )
        )
    peak = static + arena
    assert sum(cats.values()) == peak, (cats, peak)
    return MemoryReport(
        peak,
        flash,
        arena,
        tr.lower_bound,
        static,
        cats,
        tuple(layers),
        sched.infer.size,
        sched,
        tg,
        {k: v for k, v in int8.items() if v},
    )


def _category(tg: TrainGraph, names: list[str]) -> str:
    kinds = {tg.buffers[n].kind for n in names}
    if BufKind.SCRATCH in kinds:
        return "kernel_scratch"
    if BufKind.WGRAD in kinds:
        return "gradients"
    if BufKind.MASK in kinds:
        return "relu_masks"
    if kinds & {BufKind.GRAD, BufKind.LOSS, BufKind.DEQUANTIZED}:
        return "backward_working"
    if any(n in tg.saved for n in names):
        return "saved_activations"
    return "forward_working"
