"""The PULP (GAP9) lowering of the training step and its L1/L2 memory plan.

A target with a ``[cluster]`` table in its board.toml (``gap9``, ``gap9-rv32-qemu``) gets the same
``mt_model.c`` as every other target, with each kernel call of the step that has a cluster version
(the op table's :attr:`~mcutrain.core.kernels.Kernel.cluster`, ``firmware/pulp/mt_cluster.h``) replaced by
its ``mt_cl_*`` version: the fabric controller sends it to the cluster as one task. The lowering reads the
typed call records of :mod:`mcutrain.emit.calls`, never the generated C. conv2d, conv_transpose2d and
linear calls (``groups == 1``) also get their tile: how many channels one pass through the L1 buffer holds
(``tile_units``) and whether the tensor every tile reads moves into L1 once (``tile_stage``) or is read from
L2 in place. This module chooses the tiles, so it also knows each
call's L1 working set: the plan reports L1 per step and L2 (the plan's peak RAM plus the parameter tables)
against the board, and the firmware build fails, naming both numbers, when either does not fit.

The C side (``firmware/pulp/mt_cl_conv.c``) lays out a tile exactly as :func:`mac_tile` counts it.
See docs/gap9.md.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2

from mcutrain.boards.targets import Cluster, Target
from mcutrain.core import ir
from mcutrain.core.kernels import CLUSTER_ELEMENTWISE, CLUSTER_TILED, Param
from mcutrain.core.units import F32, format_bytes
from mcutrain.emit.call_records import Arg, KernelCall, StepCalls, with_kernel
from mcutrain.emit.pulp_s8 import s8_tile
from mcutrain.train.derive import Step, TrainGraph
from mcutrain.train.update_plan import PlanError

F16 = 2
#: Operand precisions of the tiled passes: fp16 stages their operands into L1 as binary16 and sums in
#: float32 (firmware/pulp/mt_cl_f16.h); L2 stays float32 either way.
PRECISIONS = ("fp32", "fp16")


class L1Error(PlanError):
    """A working set that cannot fit the cluster's L1, whatever the tile."""


@dataclass(frozen=True)
class Tile:
    units: int  # channels per tile
    stage: bool  # the tensor every tile reads is moved into L1 once
    l1_bytes: int  # the working set in the L1 buffer
    count: int = 1  # tiles of the call (passes through the L1 buffer)


@dataclass(frozen=True)
class StepL1:
    """One step of the lowered training (or inference) step: where it runs and its L1 working set."""

    index: int
    phase: str  # "train" or "infer"
    prof: str  # <op kind>_<pass>
    where: str  # "cluster, L1 tiles", "cluster, L2", "fabric controller"
    l1_bytes: int
    tiles: str  # e.g. "8 ch/tile + staged input" (channels: output ones, input ones for bw_igrad)
    tile_count: int = 0  # passes through the L1 buffer


def l1_budget(t: Target) -> int:
    """Bytes of the cluster's L1 the working tiles may use: the L1 region minus the stacks' reserve."""
    c = _cluster(t)
    return t.region(c.l1_region).length - c.l1_reserve


def choose_tile(shared: int, per_unit: int, units: int, budget: int, cores: int, what: str) -> Tile:
    """The largest balanced tile of ``units`` items of ``per_unit`` bytes in ``budget`` bytes, with the
    ``shared`` bytes every tile reads staged in L1 too when that still leaves a tile for every core."""
    staged = shared > 0 and shared + min(units, cores) * per_unit <= budget
    room = budget - (shared if staged else 0)
    n = min(units, room // per_unit)
    if n < 1:
        raise L1Error(
            f"{what}: one channel needs {per_unit:,} B of L1, more than the {budget:,} B the plan may use of "
            "the cluster's L1; the cluster tiles whole channels: make the layer narrower, or build for a "
            "target without a cluster (e.g. rv32-qemu)"
        )
    n = -(-units // -(-units // n))  # balanced: the same number of tiles, as even as possible
    return Tile(n, staged, (shared if staged else 0) + n * per_unit, -(-units // n))


def mac_tile(
    graph: ir.Graph,
    node: ir.Node,
    call: KernelCall,
    budget: int,
    cores: int,
    fp16: bool = False,
) -> Tile | None:
    """The tile of a conv2d / conv_transpose2d / linear call, or None when the call stays on one core in
    L2 (grouped convolutions). ``fp16``: the operands take 2 B in L1 (results and the bias 4 B) and the
    tensor every tile reads must be staged."""
    op, ins, out = node.op, graph.in_shapes(node), graph.shapes[node.name]
    if isinstance(op, ir.Linear):
        in_c, plane, oplane, ksize = ins[0][0], 1, 1, 1
    elif isinstance(op, (ir.Conv2d, ir.ConvTranspose2d)) and op.groups == 1:
        in_c, plane, oplane = ins[0][0], ins[0][1] * ins[0][2], out[1] * out[2]
        ksize = op.kernel[0] * op.kernel[1]
    else:
        return None
    pass_ = call.kernel.stem.removeprefix(f"{op.kind}_")
    a, b = int(call.arg("co_begin").value or 0), int(call.arg("co_end").value or 0)
    row, what, h = in_c * ksize, f"{pass_} of {node.name}", F16 if fp16 else F32
    if pass_ == "fw":
        shared, per, units = in_c * plane * h, row * h + (1 + oplane) * F32, b - a
    elif pass_ == "bw_wgrad":
        has_x, has_gw, has_gb = (not call.arg(p).null for p in ("x", "gw", "gb"))
        shared, units = in_c * plane * h if has_x else 0, b - a
        per = oplane * h + ((row if has_gw else 0) + (1 if has_gb else 0)) * F32
    else:  # bw_igrad: tiles of input channels
        n_co = b - a
        shared, per, units = n_co * oplane * h, n_co * ksize * h + plane * F32, in_c
    # fp16 always stages the shared tensor (converted), with as few as one channel per tile if need be
    tile = choose_tile(shared, per, units, budget, 1 if fp16 else cores, what)
    if fp16 and shared and not tile.stage:
        raise L1Error(
            f"{what}: FP16 converts the tensor every tile reads into L1 ({shared:,} B) and needs room for "
            f"it and one channel ({shared + per:,} B), more than the {budget:,} B the plan may use of the "
            "cluster's L1: emit with precision fp32"
        )
    return tile


#: The parameters a tiled cluster kernel takes after the portable kernel's.
TILE_PARAMS = (Param("int32_t", "tile_units"), Param("int32_t", "tile_stage"))


def lower_call(
    call: KernelCall, graph: ir.Graph, step: Step, budget: int, cores: int, fp16: bool = False
) -> tuple[KernelCall, Tile | None, bool]:
    """A kernel call of ``step`` as the cluster runs it: (call, its tile, whether it runs on the cluster).
    Calls without a cluster version come back unchanged (the fabric controller runs them). ``fp16``: tiled
    calls go to the ``mt_cl_*_f16`` versions (binary16 operands in L1)."""
    kern = call.kernel
    if kern.cluster == CLUSTER_ELEMENTWISE:
        return replace(call, kernel=replace(kern, name=f"mt_cl_{kern.stem}_f32")), None, True
    if kern.cluster != CLUSTER_TILED or step.node is None:
        return call, None, False
    s8 = kern.name.endswith("_s8")  # an int8 forward: int8 operands in L1 whatever the precision
    node = graph.node(step.node)
    tile = (
        s8_tile(graph, node, call, budget, cores) if s8 else mac_tile(graph, node, call, budget, cores, fp16)
    )
    if tile is None:
        return call, None, False
    dtype = "s8" if s8 else "f16" if fp16 else "f32"
    cl = replace(kern, name=f"mt_cl_{kern.stem}_{dtype}", params=(*kern.params, *TILE_PARAMS))
    return with_kernel(call, cl, Arg.int_(tile.units), Arg.int_(int(tile.stage))), tile, True


def _tile_text(call: KernelCall, tl: Tile) -> str:
    """``8 ch/tile + staged input (fp16)``: a tile for people; the operands' type unless float32."""
    kind = {"_f16": " (fp16)", "_s8": " (int8)"}.get(call.kernel.name[call.kernel.name.rfind("_") :], "")
    return f"{tl.units} ch/tile{' + staged input' if tl.stage else ''}{kind}"


def lower_calls(
    calls: list[StepCalls], graph: ir.Graph, t: Target, phase: str, fp16: bool = False
) -> tuple[list[StepCalls], list[StepL1]]:
    """The call records of codegen lowered for the cluster, and the L1 row of each step."""
    budget, cores = l1_budget(t), _cluster(t).cores
    out, rows = [], []
    for c in calls:
        lowered = [lower_call(call, graph, c.step, budget, cores, fp16) for call in c.calls]
        out.append(replace(c, calls=tuple(call for call, _, _ in lowered)))
        tiles = [tile for _, tile, _ in lowered if tile is not None]
        on_cluster = any(cl for _, _, cl in lowered)
        where = "cluster, L1 tiles" if tiles else "cluster, L2" if on_cluster else "fabric controller"
        desc = ", ".join(_tile_text(call, tl) for call, tl, _ in lowered if tl is not None)
        rows.append(
            StepL1(
                c.index,
                phase,
                c.prof,
                where,
                max((tl.l1_bytes for tl in tiles), default=0),
                desc,
                sum(tl.count for tl in tiles),
            )
        )
    return out, rows


@dataclass(frozen=True)
class ClusterMemory:
    """The L1 and L2 plan of a cluster target."""

    target: str
    steps: tuple[StepL1, ...]
    l1_budget: int  # L1 the tiles may use (region minus the cluster stacks' reserve)
    l1_region: int
    l2_plan: int  # the plan's peak RAM: stack reserve, arena, trainable weights, state, io buffers
    l2_params: (
        int  # parameter tables (frozen weights, factory values of the trainable ones): const data in L2
    )
    l2_region: int
    l2_reserve: int  # code and the PMSIS runtime
    precision: str = "fp32"  # operands of the tiled passes in L1 (PRECISIONS)

    @property
    def l1_bytes(self) -> int:
        """The L1 buffer: the largest working set of any step (4 B at least, a C array's minimum)."""
        return max([4, *(s.l1_bytes for s in self.steps)])

    @property
    def tiles_per_step(self) -> int:
        """Passes through the L1 buffer in one training step."""
        return sum(s.tile_count for s in self.steps if s.phase == "train")

    @property
    def l2_need(self) -> int:
        return self.l2_plan + self.l2_params

    @property
    def l2_available(self) -> int:
        return self.l2_region - self.l2_reserve

    def check(self) -> None:
        """Raises :class:`PlanError` naming both numbers when L2 or L1 does not fit."""
        if self.l2_need > self.l2_available:
            fit = (self.l2_available - self.l2_params) // 1024
            raise PlanError(
                f"the plan does not fit {self.target}'s L2: it needs {self.l2_need:,} B (peak RAM "
                f"{self.l2_plan:,} B + parameter tables {self.l2_params:,} B), L2 has {self.l2_available:,} "
                f"B ({format_bytes(self.l2_region)} minus {format_bytes(self.l2_reserve)} for code and the "
                f"PMSIS runtime); plan again with --budget {fit}KB or less"
            )
        if self.l1_bytes > self.l1_budget:
            worst = max(self.steps, key=lambda s: s.l1_bytes)
            raise PlanError(
                f"step {worst.index} ({worst.prof}) needs {worst.l1_bytes:,} B of L1, the tiles may use "
                f"{self.l1_budget:,} B of the cluster's {format_bytes(self.l1_region)} L1"
            )

    def table(self) -> str:
        """The per-step L1 table and the L2 summary, for people."""
        lines = [
            f"L2 {self.l2_need:,} B of {self.l2_available:,} B (plan peak RAM {self.l2_plan:,} + parameter "
            f"tables {self.l2_params:,}; {format_bytes(self.l2_region)} minus "
            f"{format_bytes(self.l2_reserve)} for code)",
            f"L1 {self.l1_bytes:,} B at most of {self.l1_budget:,} B (the cluster's "
            f"{format_bytes(self.l1_region)} minus the cores' stacks; {self.precision} operands, "
            f"{self.tiles_per_step} tiles per training step)",
            f"{'step':>5} {'kernel':<24} {'runs on':<18} {'L1 B':>8}  tiles",
        ]
        for s in self.steps:
            if s.phase == "train":
                lines.append(f"{s.index:>5} {s.prof:<24} {s.where:<18} {s.l1_bytes:>8,}  {s.tiles}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "l1_bytes": self.l1_bytes,
            "precision": self.precision,
            "l1_budget": self.l1_budget,
            "l1_region": self.l1_region,
            "l2_need": self.l2_need,
            "l2_plan": self.l2_plan,
            "l2_params": self.l2_params,
            "l2_available": self.l2_available,
            "steps": [[s.index, s.phase, s.prof, s.where, s.l1_bytes] for s in self.steps],
        }


#: Bytes of an element of a const table of mt_params.c.
_CTYPE_BYTES = {
    "float": 4,
    "int8_t": 1,
    "uint8_t": 1,
    "int16_t": 2,
    "int32_t": 4,
    "uint32_t": 4,
    "uint64_t": 8,
}


def cluster_memory(
    t: Target,
    rows: list[StepL1],
    peak_ram: int,
    graph: ir.Graph,
    precision: str = "fp32",
    tables: list[dict[str, Any]] | None = None,
) -> ClusterMemory:
    """The L1/L2 plan from the lowered steps; every parameter has a table in L2 (its frozen rows, or the
    factory values of trainable ones). ``tables``: codegen's const arrays (float tables, and the int8
    layers' int8 weights, int32 biases and requantization arrays), counted at their element size; without
    them every weight and bias counts 4 B."""
    c = _cluster(t)
    if tables is not None:
        params = sum(a["n"] * _CTYPE_BYTES[a["ctype"]] for a in tables if a.get("const"))
    else:
        params = F32 * sum(
            graph.param(n.name, k).size for n in graph.trainable_nodes() for k in ("weight", "bias")
        )
    return ClusterMemory(
        t.name,
        tuple(rows),
        l1_budget(t),
        t.region(c.l1_region).length,
        peak_ram,
        params,
        t.ram.length,
        c.l2_reserve,
        precision,
    )


def check_precision(precision: str, t: Target | None) -> None:
    """Raises :class:`PlanError` unless ``precision`` is one of PRECISIONS and, when not fp32, ``t`` has a
    cluster (only the cluster's tiled passes have an FP16 version)."""
    if precision not in PRECISIONS:
        raise PlanError(f"unknown precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and (t is None or t.cluster is None):
        name = "the host build" if t is None else t.name
        raise PlanError(
            f"precision {precision} is an option of the PULP cluster's tiled passes; {name} has no cluster: "
            "use --target gap9 or gap9-rv32-qemu, or precision fp32"
        )


def lower_project(
    data: dict[str, Any],
    tg: TrainGraph,
    t: Target,
    out: Path,
    env: jinja2.Environment,
    firmware: Path,
    precision: str = "fp32",
) -> ClusterMemory:
    """Lowers the call lists of codegen's template data in place, writes ``mt_cluster_plan.h`` and copies
    the cluster layer (``firmware/pulp``) into the project; returns the L1/L2 plan."""
    g, rows, fp16 = tg.graph, [], precision == "fp16"
    for key in ("forward_calls", "loss_calls", "backward_calls", "update_calls"):
        data[key], r = lower_calls(data[key], g, t, "train", fp16)
        rows += r
    data["infer_calls"], r = lower_calls(data["infer_calls"], g, t, "infer", fp16)
    rows = sorted(rows, key=lambda s: s.index) + r
    mem = cluster_memory(t, rows, data["mem"].peak_ram_bytes, g, precision, data["arrays"])
    (out / "mt_cluster_plan.h").write_text(
        env.get_template("gap9_cluster_plan.h.j2").render(**data, cm=mem, cores=_cluster(t).cores)
    )
    pulp = out / "pulp"
    if pulp.exists():
        shutil.rmtree(pulp)
    shutil.copytree(firmware / "pulp", pulp)
    return mem


def _cluster(t: Target) -> Cluster:
    if t.cluster is None:
        raise PlanError(
            f"{t.name} has no cluster: the PULP lowering needs a [cluster] table in its board.toml"
        )
    return t.cluster


def project_sources(t: Target, out: Path) -> tuple[list[str], list[str]]:
    """(sources, include dirs) the cluster layer adds to a firmware project of ``t``."""
    srcs = sorted(str(p.relative_to(out)) for p in (out / "pulp").glob("*.c"))
    incs = ["pulp"]
    if _cluster(t).pmsis == "portable":
        srcs.append("pulp/pmsis_portable/pmsis.c")
        incs.append("pulp/pmsis_portable")
    return srcs, incs


def l1_linked_bytes(sections: Any, t: Target) -> int:
    """Bytes the linked ELF places in the cluster's L1 region (from crossbuild's section list)."""
    l1 = t.region(_cluster(t).l1_region)
    return sum(s.size for s in sections if s.allocated and l1.contains(s.vma))


def check_manifest(manifest: dict[str, Any], t: Target) -> None:
    """The build's memory checks of a cluster target's firmware project (``firmware.json``): L2, then L1;
    a ``gap-sdk`` target then says how to build it. Raises :class:`PlanError` with the numbers."""
    c, cl = _cluster(t), manifest["cluster"]
    steps = tuple(StepL1(i, ph, prof, where, l1, "") for i, ph, prof, where, l1 in cl["steps"])
    mem = ClusterMemory(
        t.name,
        steps,
        l1_budget(t),
        t.region(c.l1_region).length,
        int(cl["l2_plan"]),
        int(cl["l2_params"]),
        t.ram.length,
        c.l2_reserve,
        cl.get("precision", "fp32"),
    )
    mem.check()
    if t.build_system == "gap-sdk":
        raise PlanError(
            f"{t.name} is built with the GAP SDK, which mcutrain does not run: source the SDK's environment "
            f"and run `make -f Makefile.{t.name} all run` in the project (the plan fits: L2 "
            f"{mem.l2_need:,} of {mem.l2_available:,} B, L1 {mem.l1_bytes:,} of {mem.l1_budget:,} B); the "
            "same sources build and run here with --target gap9-rv32-qemu"
        )


def sdk_makefile(
    env: jinja2.Environment, data: dict[str, Any], t: Target, srcs: list[str], incs: list[str]
) -> str:
    """The GAP SDK Makefile of a firmware project (``codegen/gap9_Makefile.j2``)."""
    board = [str(Path("bsp") / p.resolve().relative_to(t.board_dir.parent.parent)) for p in t.sources]
    return env.get_template("gap9_Makefile.j2").render(
        **data,
        sources=[*srcs, *board],
        includes=[*incs, "bsp/include"],
    )
