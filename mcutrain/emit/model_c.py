"""Code generation of the model's training step."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcutrain import __version__
from mcutrain.boards.targets import Target
from mcutrain.core import ir
from mcutrain.core.layout import device_weight
from mcutrain.core.resources import resource_dir
from mcutrain.emit.c_text import C_WARNINGS, _plus, c_array, c_float, c_ident
from mcutrain.emit.templates import template_env
from mcutrain.train.derive import Action, BufKind, Step, TrainGraph
from mcutrain.train.memory import MemoryReport, analyze
from mcutrain.train.schedule import ArenaPlan
from mcutrain.train.update_plan import LossKind, OptimizerKind, PlanError, Update, UpdatePlan

_ACT = {
    ir.ActFn.RELU: "MT_ACT_RELU",
    ir.ActFn.RELU6: "MT_ACT_RELU6",
    ir.ActFn.LEAKY_RELU: "MT_ACT_LEAKY_RELU",
    ir.ActFn.SIGMOID: "MT_ACT_SIGMOID",
    ir.ActFn.TANH: "MT_ACT_TANH",
}


@dataclass(frozen=True)
class Emitted:
    out_dir: Path
    memory: MemoryReport
    trainable_numel: int
    cluster: Any = None  # gap9.ClusterMemory of a PULP target's lowering


class _Ctx:
    """Everything the templates need, computed once."""

    def __init__(self, graph: ir.Graph, plan: UpdatePlan, mem: MemoryReport) -> None:
        self.g, self.plan, self.mem = graph, plan, mem
        self.tg: TrainGraph = mem.train_graph
        self.input_name = graph.inputs[0][0]
        self.arrays: list[dict[str, Any]] = []  # parameter tables
        self.state: list[dict[str, Any]] = []  # trainable vectors: name, n, init, m/v
        self.dims: list[dict[str, Any]] = []
        self.weights: dict[str, dict[str, Any]] = {}
        self.macros: dict[str, dict[str, dict[str, Any]]] = {}
        self.persistent: dict[str, dict[str, Any]] = {}  # gradients accumulated over a mini-batch
        self._train_ap = mem.schedule.train
        for node in graph.trainable_nodes():
            self._params(node)
        for node in graph.nodes:
            self._dims(node)

    # -- parameters ---------------------------------------------------------------------------------

    def _params(self, node: ir.Node) -> None:
        lu = self.plan.layer(node.name)
        w = device_weight(node.op, self.g.param(node.name, "weight"))
        b = self.g.param(node.name, "bias")
        cout, row = w.shape
        k = lu.channels if lu.update is Update.WEIGHT else 0
        base = c_ident(node.name)
        info: dict[str, Any] = {"cout": cout, "row": row, "k": k, "base": base}
        if k:
            self._trainable(f"{base}_w", w[:k], f"{node.name} weight rows 0..{k - 1} [{k}, {row}]")
            info["w_train"] = f"{base}_w"
        if k < cout:
            self.arrays.append(
                {
                    "name": f"{base}_w_frozen",
                    "n": (cout - k) * row,
                    "const": True,
                    "values": c_array(w[k:]),
                    "doc": f"{node.name} weight rows {k}..{cout - 1} (frozen)",
                }
            )
            info["w_frozen"] = f"{base}_w_frozen"
        if lu.bias:
            self._trainable(f"{base}_b", b, f"{node.name} bias [{cout}]")
            info["b"] = f"{base}_b"
        else:
            self.arrays.append(
                {
                    "name": f"{base}_b_frozen",
                    "n": cout,
                    "const": True,
                    "values": c_array(b),
                    "doc": f"{node.name} bias (frozen)",
                }
            )
            info["b"] = f"{base}_b_frozen"
        self.weights[node.name] = info

    def _trainable(self, name: str, values: np.ndarray, doc: str) -> None:
        n = int(values.size)
        self.arrays.append(
            {
                "name": f"{name}_init",
                "n": n,
                "const": True,
                "values": c_array(values),
                "doc": f"{doc}: initial values",
            }
        )
        self.state.append(
            {
                "name": name,
                "n": n,
                "doc": doc,
                "m": self.plan.optimizer.kind is not OptimizerKind.SGD,
                "v": self.plan.optimizer.kind is OptimizerKind.ADAM,
            }
        )

    # -- kernel dimensions --------------------------------------------------------------------------

    def _dims(self, node: ir.Node) -> None:
        op, ins, out = node.op, self.g.in_shapes(node), self.g.shapes[node.name]
        name = f"{c_ident(node.name)}_dims"
        fields: dict[str, Any] | None = None
        ctype = ""
        if isinstance(op, (ir.Conv2d, ir.ConvTranspose2d)):
            ctype = "mt_conv2d_dims_t" if isinstance(op, ir.Conv2d) else "mt_conv_transpose2d_dims_t"
            fields = dict(
                in_c=ins[0][0],
                in_h=ins[0][1],
                in_w=ins[0][2],
                out_c=out[0],
                out_h=out[1],
                out_w=out[2],
                kernel_h=op.kernel[0],
                kernel_w=op.kernel[1],
                stride_h=op.stride[0],
                stride_w=op.stride[1],
                dilation_h=op.dilation[0],
                dilation_w=op.dilation[1],
                pad_top=op.padding[0],
                pad_left=op.padding[2],
                groups=op.groups,
            )
        elif isinstance(op, ir.Linear):
            ctype, fields = "mt_linear_dims_t", dict(in_features=ins[0][0], out_features=out[0])
        elif isinstance(op, ir.ChannelAffine):
            h, w = (ins[0][1], ins[0][2]) if len(ins[0]) == 3 else (1, 1)
            ctype, fields = "mt_channel_affine_dims_t", dict(c=ins[0][0], h=h, w=w)
        elif isinstance(op, (ir.MaxPool2d, ir.AvgPool2d)):
            ctype = f"mt_{op.kind}_dims_t"
            fields = dict(
                c=ins[0][0],
                in_h=ins[0][1],
                in_w=ins[0][2],
                out_h=out[1],
                out_w=out[2],
                kernel_h=op.kernel[0],
                kernel_w=op.kernel[1],
                stride_h=op.stride[0],
                stride_w=op.stride[1],
                pad_top=op.padding[0],
                pad_left=op.padding[2],
            )
            if isinstance(op, ir.AvgPool2d):
                fields["count_include_pad"] = int(op.count_include_pad)
        elif isinstance(op, ir.Upsample):
            ctype = "mt_upsample_dims_t"
            fields = dict(
                c=ins[0][0],
                in_h=ins[0][1],
                in_w=ins[0][2],
                scale_h=op.scale[0],
                scale_w=op.scale[1],
                align_corners=int(op.align_corners),
            )
        elif isinstance(op, ir.Pad):
            t, b, l, r = op.padding
            ctype = "mt_pad_dims_t"
            fields = dict(
                c=ins[0][0], in_h=ins[0][1], in_w=ins[0][2], pad_top=t, pad_bottom=b, pad_left=l, pad_right=r
            )
        if fields is not None:
            self.dims.append({"name": name, "ctype": ctype, "fields": fields, "node": node.name})

    # -- buffers ------------------------------------------------------------------------------------

    def buf(self, name: str, ap: ArenaPlan) -> str:
        """The C expression of a buffer: a caller argument, or a named arena address (collected as a
        macro definition of the phase ``ap``)."""
        b = self.tg.buffers[name]
        root, off = name, 0
        while self.tg.buffers[root].view_of is not None:
            off += self.tg.buffers[root].view_offset
            root = self.tg.buffers[root].view_of  # type: ignore[assignment]
        if self.tg.buffers[root].kind is BufKind.IO:
            base = {"target": "target", "target_mask": "mask"}.get(root, "x")
            return f"({base} + {off // 4})" if off else base
        if b.kind is BufKind.WGRAD and self.plan.batch > 1:  # accumulates across calls: static, not arena
            name_c = "G_" + "".join(ch if ch.isalnum() else "_" for ch in name).upper()
            self.persistent.setdefault(
                name_c, {"name": name_c, "n": b.nbytes // 4, "doc": f"{name} [{b.shape}]"}
            )
            return name_c
        prefix = "T_" if ap is self._train_ap else "I_"
        macro = prefix + "".join(ch if ch.isalnum() else "_" for ch in name).upper()
        macros = self.macros.setdefault(prefix, {})
        if macro not in macros:
            ctype = "uint8_t" if b.kind is BufKind.MASK else "float"
            shape = "x".join(map(str, b.shape))
            note = f"{b.kind.value} [{shape}]" + (f", view of {b.view_of}" if b.view_of else "")
            macros[macro] = {
                "name": macro,
                "expr": f"(({ctype} *)(mt_arena + {ap.offsets[name]}u))",
                "doc": note,
                "offset": ap.offsets[name],
            }
        return macro

    # -- calls --------------------------------------------------------------------------------------

    def calls(self, steps: tuple[Step, ...], ap: ArenaPlan) -> list[dict[str, Any]]:
        out = []
        for i, s in enumerate(steps):
            out.append(
                {
                    "index": i,
                    "comment": _comment(s),
                    "lines": self._call(s, ap),
                    "prof": profile_id(self.g, s),
                }
            )
        return out

    def _ranges(self, node: str) -> list[tuple[int, int, str]]:
        """(co_begin, co_end, weight array) pieces of a parameterized layer."""
        w = self.weights[node]
        pieces = []
        if w["k"]:
            pieces.append((0, w["k"], w["w_train"]))
        if w["k"] < w["cout"]:
            pieces.append((w["k"], w["cout"], w["w_frozen"]))
        return pieces

    def _call(self, s: Step, ap: ArenaPlan) -> list[str]:
        B = lambda n: self.buf(n, ap)  # noqa: E731
        if s.action is Action.LOSS:
            return [self._loss_call(s, ap)]
        if s.action is Action.ZONE_FW:
            return [f"mt_zone_pool_fw_f32(&mt_zone_dims, {B(s.reads[0])}, {B(s.writes[0])});"]
        if s.action is Action.ZONE_BW:
            return [f"mt_zone_pool_bw_f32(&mt_zone_dims, {B(s.reads[0])}, {B(s.writes[0])}, 0);"]
        node = self.g.node(s.node or "")
        op = node.op
        kind = op.kind
        dims = f"&{c_ident(node.name)}_dims"
        n_out = math.prod(self.g.shapes[node.name])
        if s.action is Action.UPDATE:
            vecs = [v for v in self.state if v["name"].rsplit("_", 1)[0] == c_ident(node.name)]
            scale = []
            if self.plan.batch > 1:  # the mini-batch's gradient is the mean of its samples' gradients
                scale = [
                    f"mt_scale_f32({v['n']}, {self._grad_of(v['name'])}, {c_float(1 / self.plan.batch)});"
                    for v in vecs
                ]
            return scale + [self._update_call(v) for v in vecs]
        if isinstance(op, ir.TRAINABLE_OPS):
            scratch = ", MT_NO_SCRATCH" if not isinstance(op, ir.ChannelAffine) else ""
            w = self.weights[node.name]
            if s.action is Action.FORWARD:
                return [
                    f"mt_{kind}_fw_f32({dims}, {a}, {b}, {B(node.inputs[0])}, {arr}, {_plus(w['b'], a)}, "
                    f"{B(node.name)}{scratch});"
                    for a, b, arr in self._ranges(node.name)
                ]
            if s.action is Action.IGRAD:
                lines = []
                for j, (a, b, arr) in enumerate(self._ranges(node.name)):
                    acc = 1 if (j > 0 or s.accumulate) else 0
                    lines.append(
                        f"mt_{kind}_bw_igrad_f32({dims}, {a}, {b}, {arr}, {B(s.reads[0])}, "
                        f"{B(s.writes[0])}, {acc}{scratch});"
                    )
                return lines
            if s.action is Action.WGRAD:
                lu = self.plan.layer(node.name)
                x = B(node.inputs[0]) if lu.update is Update.WEIGHT else "0"
                gw = B(f"gw_{node.name}") if lu.update is Update.WEIGHT else "0"
                gb = f"gb_{node.name}"
                gbx = B(gb) if lu.bias else "0"
                k = w["k"]
                acc = "acc" if self.plan.batch > 1 else "0"
                lines = []
                if k:
                    lines.append(
                        f"mt_{kind}_bw_wgrad_f32({dims}, 0, {k}, {x}, {B(s.reads[0])}, {gw}, {gbx}, "
                        f"{acc}{scratch});"
                    )
                if lu.bias and k < w["cout"]:
                    lines.append(
                        f"mt_{kind}_bw_wgrad_f32({dims}, {k}, {w['cout']}, {x}, {B(s.reads[0])}, 0, "
                        f"{_plus(B(gb), k)}, {acc}{scratch});"
                    )
                return lines
        if isinstance(op, ir.Activation):
            fn, alpha = _ACT[op.fn], c_float(op.alpha)
            if s.action is Action.FORWARD:
                return [f"mt_activation_fw_f32({fn}, {alpha}, {n_out}, {B(node.inputs[0])}, {B(node.name)});"]
            if s.action is Action.MASK:
                return [f"mt_activation_mask_f32({fn}, {n_out}, {B(node.name)}, {B(s.writes[0])});"]
            acc = int(s.accumulate)
            if s.backward_via == "mask":
                return [
                    f"mt_activation_bw_mask_f32({fn}, {alpha}, {n_out}, {B(s.reads[1])}, {B(s.reads[0])}, "
                    f"{B(s.writes[0])}, {acc});"
                ]
            return [
                f"mt_activation_bw_f32({fn}, {alpha}, {n_out}, {B(s.reads[1])}, {B(s.reads[0])}, "
                f"{B(s.writes[0])}, {acc});"
            ]
        acc = int(s.accumulate)
        if isinstance(op, (ir.MaxPool2d, ir.AvgPool2d)):
            if s.action is Action.FORWARD:
                return [f"mt_{kind}_fw_f32({dims}, {B(node.inputs[0])}, {B(node.name)});"]
            xarg = f"{B(node.inputs[0])}, " if isinstance(op, ir.MaxPool2d) else ""
            return [f"mt_{kind}_bw_igrad_f32({dims}, {xarg}{B(s.reads[0])}, {B(s.writes[0])}, {acc});"]
        if isinstance(op, (ir.GlobalAvgPool, ir.GlobalMaxPool)):
            c, h, w_ = self.g.shapes[node.inputs[0]]
            if s.action is Action.FORWARD:
                return [f"mt_{kind}_fw_f32({c}, {h * w_}, {B(node.inputs[0])}, {B(node.name)});"]
            xarg = f"{B(node.inputs[0])}, " if isinstance(op, ir.GlobalMaxPool) else ""
            return [f"mt_{kind}_bw_igrad_f32({c}, {h * w_}, {xarg}{B(s.reads[0])}, {B(s.writes[0])}, {acc});"]
        if isinstance(op, ir.Add):
            if s.action is Action.FORWARD:
                return [f"mt_add_fw_f32({n_out}, {B(node.inputs[0])}, {B(node.inputs[1])}, {B(node.name)});"]
            return [f"mt_accumulate_f32({n_out}, {B(s.reads[0])}, {B(s.writes[0])}, {acc});"]
        if isinstance(op, ir.Reshape):
            return [f"mt_accumulate_f32({n_out}, {B(s.reads[0])}, {B(s.writes[0])}, {acc});"]
        if isinstance(op, ir.Concat):
            offs = np.cumsum([0] + [math.prod(self.g.shapes[i]) for i in node.inputs])
            if s.action is Action.FORWARD:  # inputs that live in their slice already need no copy
                lines = [
                    f"mt_copy_f32({offs[j + 1] - offs[j]}, {B(i)}, {_plus(B(node.name), offs[j])});"
                    for j, i in enumerate(node.inputs)
                    if self.tg.buffers[i].view_of != node.name
                ]
                return lines or ["/* zero-copy: every input was written into its slice */"]
            j = s.input_index
            return [
                f"mt_accumulate_f32({offs[j + 1] - offs[j]}, {_plus(B(s.reads[0]), offs[j])}, "
                f"{B(s.writes[0])}, {acc});"
            ]
        if isinstance(op, ir.Upsample):
            mode = op.mode.value
            if s.action is Action.FORWARD:
                return [f"mt_upsample_{mode}_fw_f32({dims}, {B(node.inputs[0])}, {B(node.name)});"]
            return [f"mt_upsample_{mode}_bw_igrad_f32({dims}, {B(s.reads[0])}, {B(s.writes[0])}, {acc});"]
        if isinstance(op, ir.Pad):
            if s.action is Action.FORWARD:
                return [f"mt_pad_fw_f32({dims}, {c_float(op.value)}, {B(node.inputs[0])}, {B(node.name)});"]
            return [f"mt_pad_bw_igrad_f32({dims}, {B(s.reads[0])}, {B(s.writes[0])}, {acc});"]
        if isinstance(op, ir.Softmax):
            if s.action is Action.FORWARD:
                return [f"mt_softmax_fw_f32({n_out}, {B(node.inputs[0])}, {B(node.name)});"]
            return [
                f"mt_softmax_bw_igrad_f32({n_out}, {B(s.reads[1])}, {B(s.reads[0])}, {B(s.writes[0])}, "
                f"{acc});"
            ]
        raise PlanError(f"no code generator for op {kind!r} ({s.action.value}) at node {node.name!r}")

    def _loss_call(self, s: Step, ap: ArenaPlan) -> str:
        kind = self.plan.loss.kind
        pred, out = self.buf(s.reads[0], ap), self.buf(s.writes[0], ap)
        n = math.prod(self.tg.buffers[s.reads[0]].shape)
        if kind is LossKind.XENT:
            return f"loss = mt_loss_softmax_xent_f32({n}, {pred}, target, {out});"
        mask = "mask" if self.plan.loss.masked else "0"
        return f"loss = mt_loss_{kind.value}_f32({n}, {pred}, target, {mask}, {out});"

    def _update_call(self, v: dict[str, Any]) -> str:
        o = self.plan.optimizer
        name, n = v["name"], v["n"]
        g = self._grad_of(name)
        wd = c_float(o.weight_decay)
        scale = self.plan.lr_scale(self._node_of(name), "weight" if name.endswith("_w") else "bias")
        lr = "lr" if scale == 1.0 else f"lr * {c_float(scale)}"  # the plan's constant multiplier
        if o.kind is OptimizerKind.SGD:
            return f"mt_sgd_f32({n}, {name}, {g}, {lr}, {wd});"
        if o.kind is OptimizerKind.MOMENTUM:
            return f"mt_sgd_momentum_f32({n}, {name}, {g}, {name}_m, {lr}, {c_float(o.momentum)}, {wd});"
        return (
            f"mt_adam_f32({n}, {name}, {g}, {name}_m, {name}_v, {lr}, {c_float(o.beta1)}, "
            f"{c_float(o.beta2)}, {c_float(o.eps)}, {wd}, (int32_t)(mt_step + 1u));"
        )

    def _grad_of(self, array: str) -> str:
        return self.buf(("gw_" if array.endswith("_w") else "gb_") + self._node_of(array), self._train_ap)

    def _node_of(self, array: str) -> str:
        base = array.rsplit("_", 1)[0]
        for node in self.weights:
            if c_ident(node) == base:
                return node
        raise KeyError(array)


def profile_id(graph: ir.Graph, s: Step) -> str:
    """The id of a training step's kernel call for the MT_PROFILE hook: ``<op kind>_<pass>``, e.g.
    ``conv2d_fw``, ``conv2d_bw_wgrad``, ``linear_update``, ``activation_mask``; ``loss``,
    ``zone_pool_fw`` and ``zone_pool_bw`` for the loss steps."""
    if s.action is Action.LOSS:
        return "loss"
    if s.action in (Action.ZONE_FW, Action.ZONE_BW):
        return f"zone_pool_{s.action.value.split('_')[1]}"
    return f"{graph.node(s.node or '').op.kind}_{s.action.value}"


def _comment(s: Step) -> str:
    node = s.node or "loss"
    return f"{s.action.value:<9} {node}: {', '.join(s.reads)} -> {', '.join(s.writes) or 'parameters'}"


def emit(
    graph: ir.Graph,
    plan: UpdatePlan,
    out_dir: str | Path,
    target: Target | None = None,
    precision: str = "fp32",
) -> Emitted:
    """Write the C project of ``plan`` on ``graph`` into ``out_dir`` (created; generated files replaced).
    A ``target`` (targets.Target) with a PULP cluster gets the lowering of mcutrain.gap9, whose tiled passes
    take binary16 operands with ``precision="fp16"`` (docs/gap9.md)."""
    from mcutrain.emit.pulp import check_precision

    check_precision(precision, target)
    if len(graph.inputs) != 1:
        raise PlanError("the C generator supports single-input models")
    mem = analyze(graph, plan)
    ctx = _Ctx(graph, plan, mem)
    sched = mem.schedule
    train_calls = ctx.calls(ctx.tg.steps, sched.train)
    loss_idx = [
        i for i, s in enumerate(ctx.tg.steps) if s.action in (Action.ZONE_FW, Action.LOSS, Action.ZONE_BW)
    ]
    lo, hi = loss_idx[0], loss_idx[-1] + 1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = template_env()
    out_node = graph.outputs[0]
    io_numel = {
        "input": math.prod(graph.inputs[0][1]),
        "output": math.prod(graph.shapes[out_node]),
        "target": math.prod(ctx.tg.buffers["target"].shape),
    }
    zone = plan.loss.zone
    data = {
        "version": __version__,
        "model": graph.name,
        "model_hash": graph.fingerprint(),
        "plan": plan,
        "mem": mem,
        "arena_bytes": sched.arena_bytes,
        "arrays": ctx.arrays,
        "state": ctx.state,
        "dims": ctx.dims,
        "forward_calls": train_calls[:lo],
        "loss_calls": train_calls[lo:hi],
        "backward_calls": [
            c
            for c, s in zip(train_calls[hi:], ctx.tg.steps[hi:], strict=True)
            if plan.batch == 1 or s.action is not Action.UPDATE
        ],
        "update_calls": [
            c
            for c, s in zip(train_calls[hi:], ctx.tg.steps[hi:], strict=True)
            if plan.batch > 1 and s.action is Action.UPDATE
        ],
        "persistent": list(ctx.persistent.values()),
        "scratch_queries": sorted(
            {
                f"mt_{graph.node(s.node).op.kind}_{s.action.value}_scratch_bytes(&{c_ident(s.node)}_dims)"
                for s in (*ctx.tg.steps, *ctx.tg.infer_steps)
                if s.node
                and s.action in (Action.FORWARD, Action.IGRAD, Action.WGRAD)
                and isinstance(graph.node(s.node).op, (ir.Conv2d, ir.ConvTranspose2d, ir.Linear))
            }
        ),
        "batch": plan.batch,
        "warnings": " ".join(C_WARNINGS),
        "infer_calls": ctx.calls(ctx.tg.infer_steps, sched.infer),
        "infer_out": ctx.buf(out_node, sched.infer),
        "train_macros": sorted(ctx.macros.get("T_", {}).values(), key=lambda m: (m["offset"], m["name"])),
        "infer_macros": sorted(ctx.macros.get("I_", {}).values(), key=lambda m: (m["offset"], m["name"])),
        "io": io_numel,
        "trainable_numel": sum(v["n"] for v in ctx.state),
        "zone": zone,
        "opt": plan.optimizer,
        "masked": plan.loss.masked,
        "cosine": plan.optimizer.schedule == "cosine",
        "lr": c_float(plan.optimizer.lr),
    }
    cluster = None
    if target is not None and target.cluster is not None:  # PULP: kernels as cluster tasks (docs/gap9.md)
        from mcutrain.emit.pulp import lower_project

        cluster = lower_project(data, ctx.tg, target, out, env, resource_dir("firmware"), precision)
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
    return Emitted(out, mem, data["trainable_numel"], cluster)

