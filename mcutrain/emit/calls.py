"""The training step as typed kernel calls: every step of the training graph bound to the kernels the
op table names, with each argument as data (a buffer, a parameter table, an int, a float) and its C text.

:class:`CallBuilder` binds a kernel's parameters by their names in the op table's prototypes (``x``, ``y``,
``gy``, ``gx``, ``d``, ``n``, ...; a table entry's ``args`` renames the few that differ) and returns
:class:`StepCalls`. The PULP lowering (:mod:`mcutrain.emit.pulp`) and the firmware builder read these
records; C text is rendered last (:attr:`KernelCall.text`), by the templates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mcutrain.core import ir
from mcutrain.core.int8_tables import Int8Data
from mcutrain.core.kernels import Kernel, step_kernel
from mcutrain.core.layout import c_ident
from mcutrain.core.op_table import entry
from mcutrain.core.units import F32
from mcutrain.emit.c_text import c_float, c_plus
from mcutrain.emit.call_records import NULL, Arg, KernelCall, StepCalls, bind
from mcutrain.train.derive import Action, BufKind, Step, TrainGraph
from mcutrain.train.precision import Precision
from mcutrain.train.schedule import ArenaPlan
from mcutrain.train.update_plan import LossKind, OptimizerKind, Update

_ACT = {
    ir.ActFn.RELU: "MT_ACT_RELU",
    ir.ActFn.RELU6: "MT_ACT_RELU6",
    ir.ActFn.LEAKY_RELU: "MT_ACT_LEAKY_RELU",
    ir.ActFn.SIGMOID: "MT_ACT_SIGMOID",
    ir.ActFn.TANH: "MT_ACT_TANH",
}
_CTYPES = {"f32": "float", "s8": "int8_t", "u8": "uint8_t"}
#: The scratch pointer of kernels that need none (every kernel of the runtime today: docs/kernels.md).
NO_SCRATCH = "MT_NO_SCRATCH"


@dataclass(frozen=True)
class Piece:
    """Output channels ``[begin, end)`` of a layer whose weight rows live in one array."""

    begin: int
    end: int
    weight: str


@dataclass
class LayerArrays:
    """The C arrays of one trainable layer's parameters."""

    cout: int
    rows: int  # trained weight rows [0, rows)
    bias: str  # the bias array (trainable, or the frozen table)
    trained_weight: str = ""
    frozen_weight: str = ""
    state: list[str] = field(default_factory=list)  # trainable vectors: <base>_w, <base>_b

    @property
    def pieces(self) -> list[Piece]:
        out = [Piece(0, self.rows, self.trained_weight)] if self.rows else []
        if self.rows < self.cout:
            out.append(Piece(self.rows, self.cout, self.frozen_weight))
        return out


def profile_id(graph: ir.Graph, s: Step, prec: Precision | None = None) -> str:
    """The id of a training step's kernel call for the MT_PROFILE hook: ``<op kind>_<pass>``, e.g.
    ``conv2d_fw``, ``conv2d_bw_wgrad``, ``linear_update``, ``activation_mask``, ``conv2d_fw_s8`` (an int8
    forward, with ``prec``); ``loss``, ``zone_pool_fw``, ``zone_pool_bw``, ``quantize`` and ``dequantize``
    for the steps of no op."""
    if s.action is Action.LOSS:
        return "loss"
    if s.action in (Action.QUANTIZE, Action.DEQUANTIZE):
        return s.action.value
    if s.action in (Action.ZONE_FW, Action.ZONE_BW):
        return f"zone_pool_{s.action.value.split('_')[1]}"
    int8 = prec is not None and s.action is Action.FORWARD and prec.node_int8(s.node or "")
    return f"{graph.node(s.node or '').op.kind}_{s.action.value}" + ("_s8" if int8 else "")


def _comment(s: Step) -> str:
    node = s.node or "loss"
    return f"{s.action.value:<9} {node}: {', '.join(s.reads)} -> {', '.join(s.writes) or 'parameters'}"


def _macro_name(prefix: str, buffer: str) -> str:
    return prefix + "".join(ch if ch.isalnum() else "_" for ch in buffer).upper()


class Buffers:
    """C expressions of the training graph's buffers: caller arguments (``x``, ``target``, ``mask``), named
    arena addresses (``T_*`` for the training step, ``I_*`` for inference; collected as macros) and the
    static gradient accumulators of a mini-batch plan (``G_*``)."""

    def __init__(self, tg: TrainGraph, train: ArenaPlan) -> None:
        self.tg, self.train = tg, train
        self.macros: dict[str, dict[str, dict[str, object]]] = {}
        self.persistent: dict[str, dict[str, object]] = {}  # gradients accumulated over a mini-batch

    def arg(self, name: str, ap: ArenaPlan, offset: int = 0) -> Arg:
        """The buffer ``name`` (``offset`` floats into it) of the phase ``ap``."""
        return Arg(c_plus(self._expr(name, ap), offset), buffer=name)

    def _expr(self, name: str, ap: ArenaPlan) -> str:
        bufs = self.tg.buffers
        b, root, off = bufs[name], name, 0
        while bufs[root].view_of is not None:
            off += bufs[root].view_offset
            root = bufs[root].view_of  # type: ignore[assignment]
        if bufs[root].kind is BufKind.IO:  # float
            base = {"target": "target", "target_mask": "mask"}.get(root, "x")
            return f"({base} + {off // F32})" if off else base
        if b.kind is BufKind.WGRAD and self.tg.plan.batch > 1:  # accumulates across calls: static
            name_c = _macro_name("G_", name)
            self.persistent.setdefault(
                name_c, {"name": name_c, "n": b.nbytes // F32, "doc": f"{name} [{b.shape}]"}
            )
            return name_c
        prefix = "T_" if ap is self.train else "I_"
        macro = _macro_name(prefix, name)
        macros = self.macros.setdefault(prefix, {})
        if macro not in macros:
            ctype = "uint8_t" if b.kind is BufKind.MASK else _CTYPES[b.dtype]
            shape = "x".join(map(str, b.shape))
            note = f"{b.kind.value} [{shape}]" + (f", view of {b.view_of}" if b.view_of else "")
            macros[macro] = {
                "name": macro,
                "expr": f"(({ctype} *)(mt_arena + {ap.offsets[name]}u))",
                "doc": note,
                "offset": ap.offsets[name],
            }
        return macro

    def sorted_macros(self, prefix: str) -> list[dict[str, object]]:
        return sorted(self.macros.get(prefix, {}).values(), key=lambda m: (m["offset"], m["name"]))


class CallBuilder:
    """Binds the steps of a training graph to kernel calls."""

    def __init__(
        self,
        tg: TrainGraph,
        buffers: Buffers,
        layers: dict[str, LayerArrays],
        int8: dict[str, Int8Data] | None = None,
    ) -> None:
        self.tg, self.g, self.plan = tg, tg.graph, tg.plan
        self.buffers, self.layers = buffers, layers
        self.int8 = int8 or {}  # the int8 nodes' flash data and arguments

    def steps(self, steps: tuple[Step, ...], ap: ArenaPlan) -> list[StepCalls]:
        out = []
        for i, s in enumerate(steps):
            calls, note = self._calls(s, ap)
            prof = profile_id(self.g, s, self.tg.precision)
            out.append(StepCalls(i, s, _comment(s), prof, tuple(calls), note))
        return out

    # -- dispatch -----------------------------------------------------------------------------------

    def _calls(self, s: Step, ap: ArenaPlan) -> tuple[list[KernelCall], str]:
        B: Callable[..., Arg] = lambda n, off=0: self.buffers.arg(n, ap, off)  # noqa: E731
        if s.action is Action.LOSS:
            return [self._loss(s, B)], ""
        if s.action in (Action.ZONE_FW, Action.ZONE_BW):
            kern = step_kernel(f"zone_pool_{s.action.value.split('_')[1]}")
            vals = {"d": Arg("&mt_zone_dims"), "pred": B(s.reads[0]), "zones": B(s.writes[0])}
            if s.action is Action.ZONE_BW:
                vals.update(gzones=B(s.reads[0]), gpred=B(s.writes[0]), accumulate=Arg.int_(0))
            return [bind(kern, vals)], ""
        if s.action in (Action.QUANTIZE, Action.DEQUANTIZE):
            kern = step_kernel(f"{s.action.value}_fw")
            vals = {"q": Arg(f"&{c_ident(s.reads[0])}_cvt_q8"), "x": B(s.reads[0]), "y": B(s.writes[0])}
            return [bind(kern, {**vals, "n": Arg.int_(math.prod(self.tg.buffers[s.reads[0]].shape))})], ""
        node = self.g.node(s.node or "")
        if s.action is Action.UPDATE:
            return self._update(node), ""
        if node.name in self.int8 and s.action is Action.FORWARD:
            return self._int8(s, node, B)
        if node.name in self.layers and s.action in (Action.FORWARD, Action.IGRAD, Action.WGRAD):
            return self._layer(s, node, B), ""
        if isinstance(node.op, ir.Concat):
            return self._concat(s, node, B)
        e = entry(node.op)
        pass_ = "mask" if s.action is Action.MASK else s.action.value
        kern = e.kernel(pass_, node.op, s.backward_via)
        return [bind(kern, self._values(s, node, kern, e.roles(pass_), B))], ""

    def _values(  # type: ignore[no-untyped-def]
        self,
        s: Step,
        node: ir.Node,
        kern: Kernel,
        roles: Mapping[str, str],
        B: Callable[..., Arg],
        given: Mapping[str, Arg] | None = None,
    ):
        """Arguments by parameter name: the role the op table gives it, else its name's default role; a
        role in ``given`` (an int8 kernel's constants) takes that value."""
        op, fw = node.op, s.action is Action.FORWARD
        in_shape = self.g.shapes[node.inputs[0]]
        out = {
            "d": lambda: Arg(f"&{c_ident(node.name)}_dims"),
            "n": lambda: Arg.int_(math.prod(self.g.shapes[node.name])),
            "c": lambda: Arg.int_(in_shape[0]),
            "hw": lambda: Arg.int_(in_shape[1] * in_shape[2]),
            # the input as the step reads it (converted, in mixed precision); a backward reads it second
            "x": lambda: B(s.reads[0] if fw else s.reads[1]),
            "x0": lambda: B(s.reads[0]),
            "x1": lambda: B(s.reads[1]),
            "y": lambda: B(node.name if fw or s.action is Action.MASK else s.reads[1]),
            "gy": lambda: B(s.reads[0]),
            "gx": lambda: B(s.writes[0]),
            "mask": lambda: B(s.writes[0] if s.action is Action.MASK else s.reads[1]),
            "accumulate": lambda: Arg.int_(int(s.accumulate)),
            "fn": lambda: Arg(_ACT[op.fn]),  # type: ignore[attr-defined]
            "alpha": lambda: Arg.float_(op.alpha),  # type: ignore[attr-defined]
            "value": lambda: Arg.float_(op.value),  # type: ignore[attr-defined]
        }
        given = given or {}
        vals = {}
        for p in kern.params:
            role = roles.get(p.name, p.name)
            vals[p.name] = given[role] if role in given else out[role]()
        return vals

    # -- int8 forwards ------------------------------------------------------------------------------

    def _int8(self, s: Step, node: ir.Node, B: Callable[..., Arg]) -> tuple[list[KernelCall], str]:
        """An int8 node's forward: its Int8Spec kernel with the flash data of core/int8_tables."""
        e, data = entry(node.op), self.int8[node.name]
        spec = e.int8
        assert spec is not None
        if isinstance(node.op, ir.Concat):
            return self._concat_s8(s, node, data, B)
        kern = spec.kernel(node.op)
        assert kern is not None, node.name
        consts = {k: Arg.int_(v) if isinstance(v, int) else Arg(v) for k, v in data.args.items()}
        consts["scratch"] = Arg(NO_SCRATCH)
        return [bind(kern, self._values(s, node, kern, spec.args, B, consts))], ""

    def _concat_s8(
        self, s: Step, node: ir.Node, data: Int8Data, B: Callable[..., Arg]
    ) -> tuple[list[KernelCall], str]:
        """Each input copied (or requantized through its table) into its slice, unless its producer wrote
        it there."""
        kern = entry(node.op).int8.kernel(node.op)  # type: ignore[union-attr]
        assert kern is not None
        calls, off = [], 0
        for j, i in enumerate(node.inputs):
            n = math.prod(self.g.shapes[i])
            if self.tg.buffers[i].view_of != node.name:
                lut = data.luts[j]
                vals = {"lut": Arg(lut) if lut else NULL, "n": Arg.int_(n), "x": B(s.reads[j])}
                calls.append(bind(kern, {**vals, "y": B(node.name, off)}))
            off += n
        return calls, "/* zero-copy: every input was written into its slice */"

    # -- layers with weight rows --------------------------------------------------------------------

    def _layer(self, s: Step, node: ir.Node, B: Callable[..., Arg]) -> list[KernelCall]:
        """A trainable layer's pass, one call per piece of output channels (trained rows in RAM, frozen
        rows in flash); the weight gradient covers the trained rows, plus the bias of the others."""
        e, la = entry(node.op), self.layers[node.name]
        kern = e.kernel(s.action.value, node.op)
        base = {"d": Arg(f"&{c_ident(node.name)}_dims"), "scratch": Arg(NO_SCRATCH)}
        calls = []
        if s.action is Action.FORWARD:
            for p in la.pieces:
                bias = Arg(c_plus(la.bias, p.begin))
                vals = {**base, "x": B(s.reads[0]), "w": Arg(p.weight), "b": bias, "y": B(node.name)}
                calls.append(bind(kern, {**vals, **_range(p.begin, p.end)}))
        elif s.action is Action.IGRAD:
            for j, p in enumerate(la.pieces):
                acc = Arg.int_(1 if (j > 0 or s.accumulate) else 0)
                vals = {
                    **base,
                    "w": Arg(p.weight),
                    "gy": B(s.reads[0]),
                    "gx": B(s.writes[0]),
                    "accumulate": acc,
                }
                calls.append(bind(kern, {**vals, **_range(p.begin, p.end)}))
        else:
            lu = self.plan.layer(node.name)
            weights = lu.update is Update.WEIGHT
            acc = Arg("acc") if self.plan.batch > 1 else Arg.int_(0)
            vals = {
                **base,
                "x": B(s.reads[1]) if weights else NULL,
                "gy": B(s.reads[0]),
                "accumulate": acc,
            }
            gb = f"gb_{node.name}"
            if la.rows:
                gw = B(f"gw_{node.name}") if weights else NULL
                calls.append(
                    bind(kern, {**vals, **_range(0, la.rows), "gw": gw, "gb": B(gb) if lu.bias else NULL})
                )
            if lu.bias and la.rows < la.cout:
                calls.append(
                    bind(kern, {**vals, **_range(la.rows, la.cout), "gw": NULL, "gb": B(gb, la.rows)})
                )
        return calls

    def _update(self, node: ir.Node) -> list[KernelCall]:
        """The optimizer step of each trainable vector of the layer (after the mini-batch's scaling)."""
        o, la = self.plan.optimizer, self.layers[node.name]
        stem = {OptimizerKind.SGD: "sgd", OptimizerKind.MOMENTUM: "sgd_momentum", OptimizerKind.ADAM: "adam"}
        scales, updates = [], []
        for name in la.state:
            param = "weight" if name.endswith("_w") else "bias"
            g = self.buffers.arg(("gw_" if param == "weight" else "gb_") + node.name, self.buffers.train)
            n = Arg.int_(self.tg.buffers[g.buffer or ""].nbytes // F32)
            if self.plan.batch > 1:  # the mini-batch's gradient is the mean of its samples' gradients
                scales.append(
                    bind(step_kernel("scale"), {"n": n, "x": g, "s": Arg.float_(1 / self.plan.batch)})
                )
            scale = self.plan.lr_scale(node.name, param)
            lr = (
                Arg("lr") if scale == 1.0 else Arg(f"lr * {c_float(scale)}")
            )  # the plan's constant multiplier
            vals = {"n": n, "w": Arg(name), "g": g, "lr": lr, "wd": Arg.float_(o.weight_decay)}
            vals.update(m=Arg(f"{name}_m"), v=Arg(f"{name}_v"), momentum=Arg.float_(o.momentum))
            vals.update(beta1=Arg.float_(o.beta1), beta2=Arg.float_(o.beta2), eps=Arg.float_(o.eps))
            vals["step"] = Arg("(int32_t)(mt_step + 1u)")
            updates.append(bind(step_kernel(stem[o.kind]), vals))
        return scales + updates

    # -- concat and loss ----------------------------------------------------------------------------

    def _concat(self, s: Step, node: ir.Node, B: Callable[..., Arg]) -> tuple[list[KernelCall], str]:
        """Forward: each input copied into its slice of the output, unless its producer wrote it there
        (zero-copy concat). Backward: the input's slice of the output gradient."""
        e = entry(node.op)
        offs = [0]
        for i in node.inputs:
            offs.append(offs[-1] + math.prod(self.g.shapes[i]))
        if s.action is Action.FORWARD:
            kern = e.kernel("fw", node.op)
            calls = [
                bind(kern, {"n": Arg.int_(offs[j + 1] - offs[j]), "src": B(i), "dst": B(node.name, offs[j])})
                for j, i in enumerate(node.inputs)
                if self.tg.buffers[i].view_of != node.name
            ]
            return calls, "/* zero-copy: every input was written into its slice */"
        j = s.input_index
        vals = {"n": Arg.int_(offs[j + 1] - offs[j]), "src": B(s.reads[0], offs[j]), "dst": B(s.writes[0])}
        return [bind(e.kernel("bw_igrad", node.op), {**vals, "accumulate": Arg.int_(int(s.accumulate))})], ""

    def _loss(self, s: Step, B: Callable[..., Arg]) -> KernelCall:
        kind = self.plan.loss.kind
        n = Arg.int_(math.prod(self.tg.buffers[s.reads[0]].shape))
        pred, grad = B(s.reads[0]), B(s.writes[0])
        if kind is LossKind.XENT:
            vals = {"n": n, "logits": pred, "target_prob": Arg("target"), "glogits": grad}
            return bind(step_kernel("loss_softmax_xent"), vals, result="loss")
        mask = Arg("mask") if self.plan.loss.masked else NULL
        vals = {"n": n, "pred": pred, "target": Arg("target"), "mask": mask, "gpred": grad}
        return bind(step_kernel(f"loss_{kind.value}"), vals, result="loss")


def _range(begin: int, end: int) -> dict[str, Arg]:
    return {"co_begin": Arg.int_(begin), "co_end": Arg.int_(end)}
