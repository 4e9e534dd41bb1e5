"""Code generation: a training graph and its schedule rendered through the Jinja templates of ``codegen/``
into a self-contained C project (model, parameters, kernel runtime, Makefile).

Python computes what varies per model as plain data: the parameter tables (:func:`parameter_tables`), the
kernel dimensions (from the op table's dims structs), the buffer addresses and the typed kernel calls of
each step (:mod:`mcutrain.emit.calls`); the templates lay it out as C. Arithmetic lives in
``firmware/runtime``.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mcutrain import __version__
from mcutrain.boards.targets import Target
from mcutrain.core import ir
from mcutrain.core.int8_scratch import S8_COL_BYTES
from mcutrain.core.int8_tables import ConstArray, ConstStruct, Int8Data, conversion_data, int8_data
from mcutrain.core.kernels import scratch_query
from mcutrain.core.layout import c_ident, device_weight
from mcutrain.core.op_table import entry
from mcutrain.core.resources import resource_dir
from mcutrain.emit.c_text import C_WARNINGS, c_array, c_float, c_int, c_int_array
from mcutrain.emit.call_records import StepCalls, scratch_kernels
from mcutrain.emit.calls import Buffers, CallBuilder, LayerArrays
from mcutrain.emit.output_dir import staged
from mcutrain.emit.templates import template_env
from mcutrain.train.derive import Action, TrainGraph
from mcutrain.train.memory import MemoryReport, analyze
from mcutrain.train.precision import Precision
from mcutrain.train.update_plan import OptimizerKind, PlanError, Update, UpdatePlan


@dataclass(frozen=True)
class Emitted:
    out_dir: Path
    memory: MemoryReport
    trainable_numel: int
    train_calls: tuple[StepCalls, ...]  # the training step (forward, loss, backward, updates)
    accumulators: tuple[str, ...] = ()  # static gradient sums of a mini-batch plan (G_* arrays)
    cluster: Any = None  # pulp.ClusterMemory of a PULP target's lowering

    @property
    def profile_ids(self) -> list[str]:
        """The MT_PROFILE ids of the training step, in order of first use (the mini-batch's updates,
        outside the per-sample step, are not profiled)."""
        batch = self.memory.train_graph.plan.batch
        return list(
            dict.fromkeys(
                c.prof for c in self.train_calls if batch == 1 or c.step.action is not Action.UPDATE
            )
        )


@dataclass
class ParameterTables:
    arrays: list[dict[str, Any]]  # const tables: frozen rows and biases, initial values of trainable ones
    state: list[dict[str, Any]]  # trainable vectors in RAM (name, n, doc, with momentum / Adam moments)
    layers: dict[str, LayerArrays]
    int8: dict[str, Int8Data] = field(default_factory=dict)  # node -> its int8 kernel's flash data
    structs: list[dict[str, Any]] = field(default_factory=list)  # const params structs of int8 kernels


def parameter_tables(graph: ir.Graph, plan: UpdatePlan, prec: Precision | None = None) -> ParameterTables:
    """The C arrays of every trainable layer: its trained weight rows and bias in RAM (initialized from a
    const table), its frozen rows and bias as const tables (flash); and of every int8 node, its integer
    tables and params struct (:mod:`mcutrain.core.int8_tables`)."""
    t = ParameterTables([], [], {})
    opt = plan.optimizer.kind

    def table(name: str, values: np.ndarray, doc: str) -> None:
        t.arrays.append(
            {
                "name": name,
                "ctype": "float",
                "n": int(values.size),
                "const": True,
                "values": c_array(values),
                "doc": doc,
            }
        )

    def trainable(name: str, values: np.ndarray, doc: str) -> str:
        table(f"{name}_init", values, f"{doc}: initial values")
        m, v = opt is not OptimizerKind.SGD, opt is OptimizerKind.ADAM
        t.state.append({"name": name, "n": int(values.size), "doc": doc, "m": m, "v": v})
        return name

    for node in graph.nodes:
        if prec is not None and prec.node_int8(node.name):
            t.int8[node.name] = data = int8_data(graph, node)
            for a in data.arrays:
                t.arrays.append(_int_table(a))
            if data.struct is not None:
                t.structs.append(_struct(data.struct))
    for node in graph.trainable_nodes():
        if node.name in t.int8:
            continue  # frozen int8: its integer tables above
        lu = plan.layer(node.name)
        w = device_weight(node.op, graph.param(node.name, "weight"))
        b = graph.param(node.name, "bias")
        cout, row = w.shape
        k = lu.channels if lu.update is Update.WEIGHT else 0
        base = c_ident(node.name)
        la = LayerArrays(cout, k, "")
        if k:
            la.trained_weight = trainable(
                f"{base}_w", w[:k], f"{node.name} weight rows 0..{k - 1} [{k}, {row}]"
            )
            la.state.append(la.trained_weight)
        if k < cout:
            la.frozen_weight = f"{base}_w_frozen"
            table(la.frozen_weight, w[k:], f"{node.name} weight rows {k}..{cout - 1} (frozen)")
        if lu.bias:
            la.bias = trainable(f"{base}_b", b, f"{node.name} bias [{cout}]")
            la.state.append(la.bias)
        else:
            la.bias = f"{base}_b_frozen"
            table(la.bias, b, f"{node.name} bias (frozen)")
        t.layers[node.name] = la
    return t


def _int_table(a: ConstArray) -> dict[str, Any]:
    return {
        "name": a.name,
        "ctype": a.ctype,
        "n": int(a.values.size),
        "const": True,
        "values": c_int_array(a.values, a.ctype),
        "doc": a.doc,
    }


def _struct(st: ConstStruct) -> dict[str, Any]:
    def init(v: str | int | float) -> str:
        return v if isinstance(v, str) else c_float(v) if isinstance(v, float) else c_int(v)

    return {"name": st.name, "ctype": st.ctype, "fields": {f: init(v) for f, v in st.fields}}


def conversion_structs(tg: TrainGraph) -> list[dict[str, Any]]:
    """The params struct of every QUANTIZE / DEQUANTIZE step of the training and inference graphs (the
    converted tensor's scale and zero point)."""
    tensors = {
        s.reads[0] for s in (*tg.steps, *tg.infer_steps) if s.action in (Action.QUANTIZE, Action.DEQUANTIZE)
    }
    return [_struct(conversion_data(tg.graph, t)[0]) for t in sorted(tensors)]


def dims_tables(graph: ir.Graph) -> list[dict[str, Any]]:
    """The const dims struct of every node whose op kind has one (op table)."""
    out = []
    for node in graph.nodes:
        dims = entry(node.op).dims
        if dims is not None:
            fields = dims.of(node.op, graph.in_shapes(node), graph.shapes[node.name])
            out.append(
                {
                    "name": f"{c_ident(node.name)}_dims",
                    "ctype": dims.ctype,
                    "fields": fields,
                    "node": node.name,
                }
            )
    return out


def emit(
    graph: ir.Graph,
    plan: UpdatePlan,
    out_dir: str | Path,
    target: Target | None = None,
    precision: str = "fp32",
) -> Emitted:
    """Write the C project of ``plan`` on ``graph`` into ``out_dir`` (all or nothing: see
    :mod:`mcutrain.emit.output_dir`). A ``target`` with a PULP cluster gets the lowering of
    :mod:`mcutrain.emit.pulp`, whose tiled passes take binary16 operands with ``precision="fp16"``
    (docs/gap9.md)."""
    with staged(out_dir) as stage:
        em = write_project(graph, plan, stage, target, precision)
    return replace(em, out_dir=Path(out_dir).resolve())


def plan_defines(plan: UpdatePlan) -> dict[str, str]:
    """Preprocessor definitions every build of the plan's project needs: the int8 DSP conv2d's column budget
    when it is not the runtime's default (the planned scratch buffers are sized by it)."""
    return {} if plan.int8_col_bytes == S8_COL_BYTES else {"MT_S8_COL_BYTES": str(plan.int8_col_bytes)}


def plan_define_flags(plan: UpdatePlan) -> str:
    """:func:`plan_defines` as compiler flags for the Makefiles ("" when there are none)."""
    return " ".join(f"-D{k}={v}" for k, v in plan_defines(plan).items())


def write_project(
    graph: ir.Graph,
    plan: UpdatePlan,
    out: Path,
    target: Target | None = None,
    precision: str = "fp32",
) -> Emitted:
    """:func:`emit`'s files, written into the existing folder ``out``."""
    from mcutrain.emit.pulp import check_precision

    check_precision(precision, target)
    if len(graph.inputs) != 1:
        raise PlanError("the C generator supports single-input models")
    mem = analyze(graph, plan)
    tg, sched = mem.train_graph, mem.schedule
    tables = parameter_tables(graph, plan, tg.precision)
    buffers = Buffers(tg, sched.train)
    builder = CallBuilder(tg, buffers, tables.layers, tables.int8)
    train_calls = builder.steps(tg.steps, sched.train)
    infer_calls = builder.steps(tg.infer_steps, sched.infer)
    loss_idx = [
        i for i, s in enumerate(tg.steps) if s.action in (Action.ZONE_FW, Action.LOSS, Action.ZONE_BW)
    ]
    lo, hi = loss_idx[0], loss_idx[-1] + 1
    env = template_env()
    out_node = graph.outputs[0]
    io_numel = {
        "input": math.prod(graph.inputs[0][1]),
        "output": math.prod(graph.shapes[out_node]),
        "target": math.prod(tg.buffers["target"].shape),
    }
    after_loss = train_calls[hi:]
    data = {
        "version": __version__,
        "model": graph.name,
        "model_hash": graph.fingerprint(),
        "plan": plan,
        "mem": mem,
        "arena_bytes": sched.arena_bytes,
        "arrays": tables.arrays,
        "state": tables.state,
        "dims": dims_tables(graph),
        "structs": [*tables.structs, *conversion_structs(tg)],
        "int8": bool(tables.int8),
        "forward_calls": train_calls[:lo],
        "loss_calls": train_calls[lo:hi],
        "backward_calls": [c for c in after_loss if plan.batch == 1 or c.step.action is not Action.UPDATE],
        "update_calls": [c for c in after_loss if plan.batch > 1 and c.step.action is Action.UPDATE],
        "persistent": list(buffers.persistent.values()),
        "scratch_queries": sorted(
            {
                f"{scratch_query(c.kernel).name}({c.arg('d').text})"
                for c in scratch_kernels([*train_calls, *infer_calls])
            }
        ),
        "batch": plan.batch,
        "warnings": " ".join(C_WARNINGS),
        "infer_calls": infer_calls,
        "infer_out": buffers.arg(tg.infer_out or out_node, sched.infer).text,
        "train_macros": buffers.sorted_macros("T_"),
        "infer_macros": buffers.sorted_macros("I_"),
        "io": io_numel,
        "trainable_numel": sum(v["n"] for v in tables.state),
        "zone": plan.loss.zone,
        "opt": plan.optimizer,
        "masked": plan.loss.masked,
        "cosine": plan.optimizer.schedule == "cosine",
        "lr": c_float(plan.optimizer.lr),
        "plan_defines": plan_define_flags(plan),
    }
    cluster = None
    if target is not None and target.cluster is not None:  # PULP: kernels as cluster tasks (docs/gap9.md)
        from mcutrain.emit.pulp import lower_project

        cluster = lower_project(data, tg, target, out, env, resource_dir("firmware"), precision)
    for tpl, name in (
        ("mt_model.h.j2", "mt_model.h"),
        ("gap9_model.c.j2" if cluster else "mt_model.c.j2", "mt_model.c"),
        ("mt_params.c.j2", "mt_params.c"),
        ("mt_params.h.j2", "mt_params.h"),
        ("mt_host_main.c.j2", "mt_host_main.c"),
        ("Makefile.host.j2", "Makefile"),
    ):
        (out / name).write_text(env.get_template(tpl).render(**data))
    rt = out / "runtime"
    if rt.exists():
        shutil.rmtree(rt)
    shutil.copytree(resource_dir("firmware") / "runtime", rt)
    accumulators = tuple(str(g["name"]) for g in buffers.persistent.values())
    return Emitted(out, mem, data["trainable_numel"], tuple(train_calls), accumulators, cluster)
