"""Firmware projects for the boards: the generated training step plus a board ``main.c``, cross-built
and run in QEMU, with the linker's RAM checked against the plan.

``emit_firmware()`` writes ``codegen.emit()``'s project and adds:

* ``main.c`` (``codegen/fw_selftest_main.c.j2``): with a :class:`SelfTest`, N samples and the simulator's
  losses and final parameters as const tables (flash); it runs N ``mt_train_step`` calls, compares, prints
  a short report over the UART and exits non-zero on a mismatch (:data:`EXIT_CODES`). Without one, a
  *footprint* firmware whose input/target/mask live in RAM as in an application;
* ``mt_profile.h``: the ``MT_PROFILE`` hook of ``mt_model.c`` counting instructions per kernel kind and pass;
* ``bsp/``: a copy of the board support package, and ``Makefile.<target>`` (the same flags, sources and
  stack as :func:`build_firmware`), so the folder builds anywhere with ``make`` and the cross compiler;
* ``firmware.json``: the manifest the build and run steps read (target, plan numbers, stack, sources).

RAM: the plan's ``stack_reserve_bytes`` pays for the call stack *and* the board runtime's static data
(UART/counter state, picolibc's stdio and TLS, the harness). The firmware links a stack region of the
reserve minus :data:`RUNTIME_RESERVE_BYTES`; the build checks that the stack need (static worst path,
``stackusage``) fits that region and that the linked RAM (stack + .data + .bss) is within the plan's peak.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, gap9, ir
from .codegen import Emitted, c_array, c_float, c_ident, emit, template_env
from .crossbuild import COMMON_CFLAGS, BuildResult, SizeReport, build
from .layout import device_weight
from .plan import LossKind, OptimizerKind, PlanError, Update, UpdatePlan
from .qemu import RunResult, qemu_command, run_qemu
from .sim import Simulator
from .stackusage import StackEstimate, analyze
from .targets import Target, firmware_dir, format_size, load_target

MANIFEST = "firmware.json"
#: Exit status of the firmware: pass, the self-test's mismatches, and the board's fault handler.
EXIT_CODES = {"pass": 0, "loss": 10, "param": 11, "nonfinite": 12, "fault": 250}
#: Bytes of the plan's stack reserve kept for static data of the board runtime and the harness
#: (measured: 72 B on the Arm boards: picolibc's stdio FILE and TLS, SysTick and UART state).
RUNTIME_RESERVE_BYTES = 256
#: Relative tolerance of the self-test (losses and parameters). On the host the generated C matches the
#: simulator to 1e-5; on Cortex-M the build has -ffp-contract=off, so only libm (expf, logf) and the order of
#: float sums in PyTorch differ: measured max 2.1e-7 (loss) and 4.9e-7 (parameters) over the models and plans
#: of tests/emulator/test_firmware_selftest.py. Widened to 4x the float32 noise floor (the float32 simulator
#: against float64) where a model amplifies round-off more than this, as in tests/test_codegen.py.
DEFAULT_TOL = 1e-5
LOSS_FLOOR = 1e-3  # loss errors are relative to max(|loss|, LOSS_FLOOR)
EXTRA_CFLAGS = ("-fno-math-errno", "-fcallgraph-info=su")
#: main.c variants of emit_firmware(app=...): None (footprint or self-test) and the serial link.
APPS = (None, "link")
#: Device side of the serial link (firmware/link/), compiled into the link firmware.
LINK_SOURCES = ("mt_link.c", "mt_link_sample.c", "mt_link_service.c")
#: RAM of the link firmware beyond its frame buffer and output: mt_link_t (100 B) and the statistics.
LINK_STATE_BYTES = 192
#: Storage backends of the link firmware's CHECKPOINT PERSIST: a semihosting file standing in for flash
#: (Arm boards under QEMU). Its sources, besides LINK_SOURCES.
STORAGE_SOURCES = {"semihost": ("bsp/link/mt_store.c", "bsp/boards/common/mt_semihost.c")}
#: The storage file of the semihost backend, relative to QEMU's working directory.
DEFAULT_STORAGE_FILE = "mcutrain_state.bin"
#: Validation slots the link service tracks one by one (a bit each in mt_link_t).
MAX_VAL_SLOTS = 32


class FirmwareError(RuntimeError):
    """A firmware project that cannot be emitted, built or run as asked; the message says why."""


# ---- self-test data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfTest:
    """Samples for the self-test firmware, one training step each, in the model's input layout."""

    x: np.ndarray  # [N, *input shape]
    target: np.ndarray  # [N, target numel]
    mask: np.ndarray | None = None  # [N, target numel] for masked losses
    tol: float = DEFAULT_TOL  # relative tolerance of losses and parameters (before the noise-floor widening)

    @property
    def steps(self) -> int:
        return len(self.x)

    @staticmethod
    def random(graph: ir.Graph, plan: UpdatePlan, steps: int, seed: int = 0) -> SelfTest:
        """Standard-normal inputs; one-hot labels (cross-entropy) or targets in [0, 1]; masks with ~70%
        valid elements when the loss is masked."""
        if steps < 1:
            raise PlanError(f"a self-test needs at least one step, got {steps}")
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((steps, *graph.inputs[0][1])).astype(np.float32)
        numel = plan.loss.target_numel(graph.shapes[graph.outputs[0]])
        if plan.loss.kind is LossKind.XENT:
            t = np.eye(numel, dtype=np.float32)[rng.integers(0, numel, steps)]
        else:
            t = rng.random((steps, numel)).astype(np.float32)
        m = (rng.random((steps, numel)) > 0.3).astype(np.float32) if plan.loss.masked else None
        return SelfTest(x, t, m)


@dataclass(frozen=True)
class Expected:
    losses: np.ndarray  # [N] loss of each step before its update
    params: tuple[tuple[str, np.ndarray], ...]  # C name of each trainable vector, its values after N steps
    tol_loss: float
    tol_param: float
    noise_loss: float  # float32 simulator vs float64: the model's own round-off amplification
    noise_param: float


def trainable_vectors(graph: ir.Graph, plan: UpdatePlan, params: dict[str, np.ndarray]) -> list:
    """(C name, device-order values) of every trainable vector, in mt_export_params order."""
    out = []
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        base = c_ident(node.name)
        if lu.update is Update.WEIGHT:
            w = device_weight(node.op, params[f"{node.name}.weight"])[: lu.channels]
            out.append((f"{base}_w", w.reshape(-1).astype(np.float32)))
        if lu.bias:
            out.append((f"{base}_b", params[f"{node.name}.bias"].reshape(-1).astype(np.float32)))
    return out


def trainable_names(graph: ir.Graph, plan: UpdatePlan) -> list[str]:
    """C names of the trainable vectors of mt_model.c, in mt_export_params order (as trainable_vectors)."""
    out = []
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        base = c_ident(node.name)
        if lu.update is Update.WEIGHT:
            out.append(f"{base}_w")
        if lu.bias:
            out.append(f"{base}_b")
    return out


def link_frame_bytes(graph: ir.Graph, plan: UpdatePlan) -> int:
    """Frame buffer of the link firmware: the model's largest SAMPLE with float32 blocks (header, sample
    header, three block headers, CRC), 4-aligned, between MT_LINK_MIN_FRAME and MT_LINK_MAX_FRAME. Larger
    models must send integer encodings (u8/i16/label/bits); parameters always travel in chunks."""
    numel_in = math.prod(graph.inputs[0][1])
    numel_t = plan.loss.target_numel(graph.shapes[graph.outputs[0]])
    n = 8 + 8 + 3 * 16 + 4 * numel_in + 4 * numel_t * (2 if plan.loss.masked else 1) + 4
    return min(6144, max(320, (n + 3) // 4 * 4))


def eval_metric(graph: ir.Graph, plan: UpdatePlan) -> str | None:
    """What EVAL reports as its metric: accuracy (cross-entropy with one output per class), RMSE (MSE
    loss: the square root of each sample's loss), mean absolute error (L1), or None (NaN on the wire)."""
    if plan.loss.kind is LossKind.XENT:
        numel = math.prod(graph.shapes[graph.outputs[0]])
        return "accuracy" if numel == plan.loss.target_numel(graph.shapes[graph.outputs[0]]) else None
    return {LossKind.MSE: "rmse", LossKind.L1: "mae"}.get(plan.loss.kind)


def checkpoint_state_names(graph: ir.Graph, plan: UpdatePlan) -> list[str]:
    """C names of what a checkpoint keeps: the trainable vectors, then the optimizer's moments."""
    names = trainable_names(graph, plan)
    kind = plan.optimizer.kind
    moments = [f"{n}_m" for n in names] if kind is not OptimizerKind.SGD else []
    return names + moments + ([f"{n}_v" for n in names] if kind is OptimizerKind.ADAM else [])


def _link_data(
    graph: ir.Graph,
    plan: UpdatePlan,
    t: Target,
    model_src: str,
    plan_peak: int,
    trainable_numel: int,
    val_slots: int,
    snapshot: bool | None,
    storage: str | None,
    storage_file: str,
) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    """Template data, RAM by part (firmware.json ``link_memory``) and extra sources of the link firmware;
    checks the options and that the plan plus the link fit the board's RAM."""
    if not 0 <= val_slots <= MAX_VAL_SLOTS:
        raise PlanError(f"val_slots must be 0..{MAX_VAL_SLOTS}, got {val_slots}")
    if storage is not None and storage not in STORAGE_SOURCES:
        raise PlanError(f"unknown storage {storage!r}: one of {', '.join(STORAGE_SOURCES)} (or None)")
    if storage == "semihost" and (t.arch != "arm" or not t.runs_in_qemu):
        raise PlanError(f"semihost storage needs an Arm board under QEMU; {t.name} is not: use storage=None")
    if storage is not None and snapshot is False:
        raise PlanError("persistence writes the snapshot: storage needs snapshot=True")
    if not re.fullmatch(r"[\w./-]{1,100}", storage_file):
        raise PlanError(f"storage file {storage_file!r}: use 1..100 letters, digits, '.', '_', '-', '/'")
    keep = bool(val_slots or storage) if snapshot is None else snapshot
    numel_in = math.prod(graph.inputs[0][1])
    numel_t = plan.loss.target_numel(graph.shapes[graph.outputs[0]])
    frame = link_frame_bytes(graph, plan)
    state = checkpoint_state_names(graph, plan)
    state_numel = trainable_numel * len(state) // max(1, len(trainable_names(graph, plan)))
    memory = {
        "frame": frame,
        "output": 4 * math.prod(graph.shapes[graph.outputs[0]]),
        "state": LINK_STATE_BYTES,
        "validation": 4 * val_slots * (numel_in + numel_t * (2 if plan.loss.masked else 1)),
        "snapshot": 4 * state_numel + 4 if keep else 0,
    }
    need = plan_peak + sum(memory.values())
    if need > t.ram.length:
        raise PlanError(
            f"the link firmware needs {need:,} B of RAM on {t.name} (plan {plan_peak:,} B, link "
            + ", ".join(f"{k} {v:,} B" for k, v in memory.items())
            + f"), the board has {t.ram.length:,} B: use fewer validation slots or snapshot=False"
        )
    data = {
        "link_frame": frame,
        "param_names": trainable_names(graph, plan),
        "plan_summary": _c_string(plan_summary(plan))[:96],
        "input_chw": _chw(graph.inputs[0][1]),
        "val_slots": val_slots,
        "snapshot": keep,
        "state_names": state,
        "accumulators": re.findall(r"^static float (G_\w+)\[", model_src, re.M),
        "batch": plan.batch,
        "storage": storage is not None,
        "storage_file": storage_file,
        "metric": eval_metric(graph, plan),
    }
    return data, memory, list(STORAGE_SOURCES.get(storage or "", ()))


def plan_summary(plan: UpdatePlan) -> str:
    """One line for INFO: strategy, optimizer, learning rate, batch."""
    o = plan.optimizer
    return f"{plan.strategy} {o.kind.value} lr={o.lr:g} batch={plan.batch}"


def _c_string(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _chw(shape: tuple[int, ...] | list[int]) -> tuple[int, int, int]:
    dims = [int(d) for d in shape][-3:]
    return tuple([1] * (3 - len(dims)) + dims)  # type: ignore[return-value]


def expected(graph: ir.Graph, plan: UpdatePlan, st: SelfTest, fp16_operands: bool = False) -> Expected:
    """The simulator's losses and final parameters on the self-test's samples, and the tolerances
    (``fp16_operands``: the PULP cluster's FP16 option, docs/gap9.md)."""
    runs = {}
    for dtype in (torch.float32, torch.float64):
        sim = Simulator(graph, plan, dtype=dtype, fp16_operands=fp16_operands)
        losses = []
        for i in range(st.steps):
            m = None if st.mask is None else st.mask[i : i + 1]
            losses.append(sim.train_step(st.x[i : i + 1], st.target[i : i + 1], m))
        runs[dtype] = (np.array(losses, dtype=np.float64), trainable_vectors(graph, plan, sim.numpy_params()))
    (l32, p32), (l64, p64) = runs[torch.float32], runs[torch.float64]
    if not (np.all(np.isfinite(l32)) and all(np.all(np.isfinite(v)) for _, v in p32)):
        raise PlanError(
            f"the simulator's training diverges on the self-test samples within {st.steps} steps "
            "(a non-finite loss or parameter): lower the learning rate or the number of steps"
        )
    noise_loss = float(np.max(np.abs(l32 - l64) / np.maximum(np.abs(l64), LOSS_FLOOR)))
    noise_param = max(
        (float(np.max(np.abs(a - b))) / _scale(a) for (_, a), (_, b) in zip(p32, p64, strict=True)),
        default=0.0,
    )
    return Expected(
        l32.astype(np.float32),
        tuple(p32),
        max(st.tol, 4 * noise_loss),
        max(st.tol, 4 * noise_param),
        noise_loss,
        noise_param,
    )


def _scale(v: np.ndarray) -> float:
    return float(np.max(np.abs(v))) + 1e-12


# ---- emit ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareProject:
    out_dir: Path
    target: Target
    emitted: Emitted
    manifest: dict[str, Any]
    expected: Expected | None


def stack_region_bytes(plan: UpdatePlan) -> int:
    """The stack the firmware links: the plan's reserve minus the runtime's static data, 8-aligned."""
    n = (plan.stack_reserve_bytes - RUNTIME_RESERVE_BYTES) // 8 * 8
    if n < 512:
        raise PlanError(
            f"the plan reserves {plan.stack_reserve_bytes} B for stack and runtime; the firmware needs at "
            f"least {512 + RUNTIME_RESERVE_BYTES} B ({RUNTIME_RESERVE_BYTES} B of it for the runtime's data)"
        )
    return n


def emit_firmware(
    graph: ir.Graph,
    plan: UpdatePlan,
    out_dir: str | Path,
    target: Target | str,
    selftest: SelfTest | None = None,
    app: str | None = None,
    val_slots: int = 0,
    snapshot: bool | None = None,
    storage: str | None = None,
    storage_file: str = DEFAULT_STORAGE_FILE,
    precision: str = "fp32",
) -> FirmwareProject:
    """Write a firmware project for ``target`` into ``out_dir``: codegen.emit's files plus main.c (a
    self-test when ``selftest`` is given, the serial-link firmware with ``app="link"``, else a footprint
    firmware), mt_profile.h, bsp/, Makefile.<target> and the manifest.

    Link firmware only: ``val_slots`` validation samples on the device (EVAL VALSET, CHECKPOINT
    accept-if-better); ``snapshot`` keeps a copy of the training state for CHECKPOINT/ROLLBACK (default: when
    there are validation slots or storage); ``storage="semihost"`` persists checkpoints into
    ``storage_file`` (relative to QEMU's working directory). Their RAM is counted in ``link_memory``.
    ``precision="fp16"`` (PULP targets): the cluster's tiled passes on binary16 operands (docs/gap9.md)."""
    if app not in APPS:
        raise PlanError(f"unknown firmware app {app!r}: one of {', '.join(a for a in APPS if a)}")
    if app != "link" and (val_slots or snapshot or storage):
        raise PlanError(
            "validation slots, snapshots and storage belong to the serial-link firmware (app='link')"
        )
    if app == "link" and selftest is not None:
        raise PlanError("a firmware is either a self-test or the serial link, not both")
    t = load_target(target) if isinstance(target, str) else target
    gap9.check_precision(precision, t)
    stack = stack_region_bytes(plan)
    exp = None
    if selftest is not None and plan.batch != 1:
        raise PlanError(
            f"the self-test compares every training step with the simulator; plan {plan.strategy} updates "
            f"once per {plan.batch} samples: emit a self-test of a batch-1 plan, or a footprint firmware"
        )
    if selftest is not None:
        if selftest.x.shape[1:] != tuple(graph.inputs[0][1]):
            raise PlanError(
                f"self-test inputs have shape {selftest.x.shape[1:]}, the model takes {graph.inputs[0][1]}"
            )
        if plan.loss.masked and selftest.mask is None:
            raise PlanError("the plan's loss is masked: the self-test needs masks")
        exp = expected(graph, plan, selftest, precision == "fp16")
    out = Path(out_dir).resolve()
    em = emit(graph, plan, out, t, precision)
    src = (out / "mt_model.c").read_text()
    profile_ids = list(dict.fromkeys(re.findall(r"^\s+MT_PROFILE_BEGIN\((\w+)\);", src, re.MULTILINE)))

    bsp = out / "bsp"
    if bsp.exists():
        shutil.rmtree(bsp)
    fw = firmware_dir()
    shutil.copytree(fw / "include", bsp / "include")
    shutil.copytree(fw / "boards" / "common", bsp / "boards" / "common")
    shutil.copytree(t.board_dir, bsp / "boards" / t.name)
    if app == "link":
        shutil.copytree(fw / "link", bsp / "link")
    local = _relocate(t, out, stack)
    kind = "selftest" if selftest is not None else app or "footprint"

    data: dict[str, Any] = {
        "version": __version__,
        "model": graph.name,
        "model_hash": graph.fingerprint(),
        "plan": plan,
        "target": t,
        "selftest": selftest is not None,
        "steps": selftest.steps if selftest is not None else 1,
        "exit": EXIT_CODES,
        "masked": plan.loss.masked,
        "profile_ids": profile_ids,
        "loss_floor": c_float(LOSS_FLOOR),
    }
    if selftest is not None and exp is not None:
        data["samples"] = [
            {
                "x": c_array(selftest.x[i]),
                "target": c_array(selftest.target[i]),
                "mask": c_array(selftest.mask[i]) if selftest.mask is not None else "",
            }
            for i in range(selftest.steps)
        ]
        data["losses"] = c_array(exp.losses)
        data["params"] = [
            {"name": n, "n": v.size, "values": c_array(v), "scale": c_float(_scale(v))} for n, v in exp.params
        ]
        data["tol_loss"] = c_float(exp.tol_loss)
        data["tol_param"] = c_float(exp.tol_param)
    link_memory: dict[str, int] = {}
    link_srcs: list[str] = []
    if app == "link":
        opts = (val_slots, snapshot, storage, storage_file)
        link_data, link_memory, link_srcs = _link_data(
            graph, plan, t, src, em.memory.peak_ram_bytes, em.trainable_numel, *opts
        )
        data.update(link_data)
    link_ram = sum(link_memory.values())
    env = template_env()
    main = "fw_link_main.c.j2" if app == "link" else "fw_selftest_main.c.j2"
    (out / "main.c").write_text(env.get_template(main).render(**data))
    (out / "mt_profile.h").write_text(env.get_template("fw_mt_profile.h.j2").render(**data))

    if selftest is not None or app == "link":  # main.c includes mt_model.c
        srcs = ["main.c", "mt_params.c"]
    else:
        srcs = ["main.c", "mt_model.c", "mt_params.c"]
    srcs += sorted(str(p.relative_to(out)) for p in (out / "runtime" / "src").glob("*.c"))
    include_dirs = [".", "runtime/include"]
    for k in t.kernels:  # the board's optimized kernel sets; mt_model.c includes the last one's selection
        srcs += sorted(str(p.relative_to(out)) for p in (out / "runtime" / k).glob("*.c"))
        include_dirs.append(f"runtime/{k}")
    kernel_defines = {"MT_KERNEL_SELECT": f'"mt_{t.kernels[-1]}_select.h"'} if t.kernels else {}
    if app == "link":
        srcs += [f"bsp/link/{f}" for f in LINK_SOURCES] + link_srcs
        include_dirs.append("bsp/link")
    if t.cluster is not None:  # the PULP cluster layer and its PMSIS (docs/gap9.md)
        cl_srcs, cl_incs = gap9.project_sources(t, out)
        srcs += cl_srcs
        include_dirs += cl_incs
    rel = lambda p: str(Path(p).relative_to(out))  # noqa: E731
    defines = " ".join(f"-D{k}={_make_quote(v)}" for k, v in {**t.c_defines(), **kernel_defines}.items())
    makefile = env.get_template("fw_Makefile.j2").render(
        **data,
        kind={"selftest": "self-test", "link": "serial-link"}.get(kind, kind),
        stack_bytes=stack,
        runtime_reserve=RUNTIME_RESERVE_BYTES,
        cpu_flags=" ".join(t.cflags),
        specs=" ".join(t.specs),
        cflags=" ".join([*COMMON_CFLAGS, "-fno-math-errno"]),
        defines=defines,
        includes=" ".join(f"-I{d}" for d in [*(rel(p) for p in local.include_dirs), *include_dirs]),
        linker_script=rel(local.linker_script),
        linker_search=" ".join(f"-L{rel(p)}" for p in local.linker_search),
        sources=[*(rel(p) for p in local.sources), *srcs],
        qemu=" ".join(qemu_command(t, "$<")) if t.qemu else "",
        timeout=120,
    )
    if t.build_system == "gap-sdk":  # the vendor's build instead (docs/gap9.md)
        makefile = gap9.sdk_makefile(env, data, t, srcs, include_dirs)
    (out / f"Makefile.{t.name}").write_text(makefile)

    mem = em.memory
    manifest = {
        "format": "mcutrain-firmware/1",
        "generator": __version__,
        "target": t.name,
        "kind": kind,
        "link_ram_bytes": link_ram,
        "link_memory": link_memory,
        "model": graph.name,
        "model_hash": graph.fingerprint(),
        "plan": plan.to_dict(),
        "plan_peak_ram_bytes": mem.peak_ram_bytes,
        "plan_memory": dict(mem.categories),
        "arena_bytes": mem.arena_bytes,
        "trainable_numel": em.trainable_numel,
        "stack_region_bytes": stack,
        "runtime_reserve_bytes": RUNTIME_RESERVE_BYTES,
        "sources": srcs,
        "include_dirs": include_dirs,
        "defines": kernel_defines,
        "profile_ids": profile_ids,
        "steps": data["steps"],
        "selftest": None
        if exp is None
        else {
            "tol_loss": exp.tol_loss,
            "tol_param": exp.tol_param,
            "noise_loss": exp.noise_loss,
            "noise_param": exp.noise_param,
            "losses": [float(v) for v in exp.losses],
        },
        "macs": step_macs(graph, plan),
        "cluster": em.cluster.to_dict() if em.cluster is not None else None,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return FirmwareProject(out, t, em, manifest, exp)


def _make_quote(v: str) -> str:
    return f"'{v}'" if '"' in v else v


def _relocate(t: Target, project: Path, stack: int) -> Target:
    """The target with its board files taken from the project's bsp/ copy, and the given stack."""
    fw, bsp = firmware_dir().resolve(), (project / "bsp").resolve()

    def move(p: Path) -> Path:
        return bsp / Path(p).resolve().relative_to(fw)

    return replace(
        t,
        board_dir=move(t.board_dir),
        sources=tuple(map(move, t.sources)),
        include_dirs=tuple(map(move, t.include_dirs)),
        linker_script=move(t.linker_script),
        linker_search=tuple(map(move, t.linker_search)),
        stack_bytes=stack,
    )


def step_macs(graph: ir.Graph, plan: UpdatePlan) -> dict[str, int]:
    """Multiply-accumulates of one training step per profile id (``<kind>_<pass>``): conv, transposed
    conv and linear count their MACs (weight gradients only over the trained rows, none for a bias-only
    update); every other kernel counts one per output element. Sum of the MAC kinds: ``macs_total``."""
    from .codegen import profile_id
    from .memory import analyze as analyze_memory

    tg = analyze_memory(graph, plan).train_graph
    out: dict[str, int] = {}
    for s in tg.steps:
        pid = profile_id(graph, s)
        n = 0
        if s.node is not None:
            node = graph.node(s.node)
            op = node.op
            macs = op.macs(graph.in_shapes(node), graph.shapes[node.name])
            if isinstance(op, (ir.Conv2d, ir.ConvTranspose2d, ir.Linear)):
                if s.action.value in ("fw", "bw_igrad"):
                    n = macs
                elif s.action.value == "bw_wgrad":
                    lu = plan.layer(node.name)
                    n = macs * lu.channels // graph.shapes[node.name][0] if lu.update is Update.WEIGHT else 0
                elif s.action.value == "update":
                    n = sum(tg.buffers[w].nbytes // 4 for w in s.reads)
            else:
                n = math.prod(graph.shapes[node.name])
        else:
            n = math.prod(tg.buffers[s.reads[0]].shape)
        out[pid] = out.get(pid, 0) + n
    return out


MAC_KINDS = ("conv2d_", "conv_transpose2d_", "linear_")


def is_mac_id(pid: str) -> bool:
    """Profile ids whose count is multiply-accumulates (conv/linear fw, bw_wgrad, bw_igrad)."""
    return pid.startswith(MAC_KINDS) and pid.rsplit("_", 1)[-1] in ("fw", "wgrad", "igrad")


# ---- build ---------------------------------------------------------------------------------------


def load_manifest(project: str | Path) -> dict[str, Any]:
    path = Path(project) / MANIFEST
    if not path.is_file():
        raise FirmwareError(
            f"{project} is not a firmware project (no {MANIFEST}): run `mcutrain emit PLAN --target BOARD`"
        )
    m = json.loads(path.read_text())
    if m.get("format") != "mcutrain-firmware/1":
        raise FirmwareError(f"{path}: not an mcutrain firmware manifest")
    return m


@dataclass(frozen=True)
class StackBound:
    """Static stack need of the firmware while it trains (an upper bound, from ``stackusage``)."""

    step: StackEstimate  # mt_train_step and everything below it
    above: int  # frames of the start-up code and main() above mt_train_step
    interrupt: int  # one exception entry (hardware frame, FP context) plus the deepest handler
    whole: StackEstimate  # the whole program from start-up (printf calls through a pointer: a lower bound)

    @property
    def training(self) -> int:
        return self.above + self.step.bytes + self.interrupt


#: Cortex-M exception entry: 8 words, or 26 with the lazily stacked FP context (hard-float builds).
_EXC_FRAME = {True: 104, False: 32}
_HANDLERS = ("mt_systick_handler",)


def _stack_bound(est: dict[str, StackEstimate], t: Target, link: bool = False) -> StackBound:
    frame = lambda f: est[f].path[0][1] if f in est else 0  # noqa: E731
    handler = max((est[h].bytes for h in _HANDLERS if h in est), default=0)
    fp = "-mfloat-abi=hard" in t.cflags
    # RISC-V boards poll their UART and take no interrupts; a trap is fatal and reports on a fresh stack
    exc = _EXC_FRAME[fp] + handler if t.arch == "arm" else 0
    # the link firmware trains from a callback: main > mt_link_service (its deepest path) > the callback
    above = frame("mt_board_c_start") + frame("main")
    if link:
        above += est["mt_link_service"].bytes + frame("mt_fw_link_train")
    return StackBound(
        est["mt_train_step"],
        above,
        exc,
        est["mt_board_c_start"],
    )


@dataclass(frozen=True)
class FirmwareBuild:
    project: Path
    target: Target  # relocated to the project's bsp/, with the linked stack size
    result: BuildResult
    manifest: dict[str, Any]
    stack: StackBound
    profile: bool

    @property
    def elf(self) -> Path:
        return self.result.elf

    @property
    def size(self) -> SizeReport:
        return self.result.size

    @property
    def plan_peak_ram(self) -> int:
        return int(self.manifest["plan_peak_ram_bytes"])

    def summary(self) -> str:
        s, m, t, k = self.size, self.manifest, self.target, self.stack
        link_ram = int(m.get("link_ram_bytes", 0))
        peak = self.plan_peak_ram
        diff = peak + link_ram - s.ram_bytes
        link = f" + serial link {link_ram:,} B" if link_ram else ""
        safety = [
            f"{k} {v:,} B"
            for k, v in m.get("link_memory", {}).items()
            if k in ("validation", "snapshot") and v
        ]
        link += f" (of it {', '.join(safety)})" if safety else ""
        return "\n".join(
            [
                f"built {self.elf} for {t.name} ({m['kind']}, model {m['model']}, "
                f"plan {m['plan']['strategy']}{', MT_PROFILE' if self.profile else ''})",
                f"  flash  {s.flash_bytes:>9,} B of {format_size(t.flash.length)} ({t.flash.name})",
                f"  RAM    {s.ram_bytes:>9,} B of {format_size(t.ram.length)} ({t.ram.name}) = stack "
                f"{s.stack_bytes:,} + .data {s.data_bytes:,} + .bss {s.bss_bytes:,}",
                f"         plan peak RAM {peak:,} B{link}: linked RAM is "
                + (f"{diff:,} B under it" if diff >= 0 else f"{-diff:,} B OVER it"),
                f"  arena  {m['arena_bytes']:>9,} B; trainable parameters {m['trainable_numel']:,} floats",
                f"  stack  {k.training:>9,} B at most while training (static: start-up and main {k.above} "
                f"+ mt_train_step {k.step.bytes} + an interrupt {k.interrupt}) of the {s.stack_bytes:,} B "
                "region",
                f"         deepest step path: {' > '.join(f.rsplit(':', 1)[-1] for f, _ in k.step.path)}",
                f"         whole program {'' if k.whole.complete else '>= '}"
                f"{k.whole.bytes + k.interrupt:,} B with printf",
            ]
        )


def build_firmware(
    project: str | Path, target: str | None = None, profile: bool = False, out_dir: str | Path | None = None
) -> FirmwareBuild:
    """Cross-build the firmware project with the target's flags and check its memory.

    Raises :class:`FirmwareError` when the plan cannot fit the board (naming both numbers), when the
    stack need exceeds the stack region, or when the linked RAM exceeds the plan's peak RAM (not for
    ``profile`` builds, whose counters add a few hundred bytes); ``crossbuild.BuildError`` on a compile
    error or a link overflow.
    """
    proj = Path(project).resolve()
    m = load_manifest(proj)
    if target is not None and target != m["target"]:
        raise FirmwareError(
            f"{project} was emitted for {m['target']}, not {target}: re-run `mcutrain emit --target {target}`"
        )
    base = load_target(m["target"])
    peak = int(m["plan_peak_ram_bytes"])
    if m.get("cluster"):  # L2 and L1 of a PULP target, both numbers each (docs/gap9.md)
        try:
            gap9.check_manifest(m, base)
        except PlanError as e:
            raise FirmwareError(str(e)) from None
    if peak > base.ram.length:
        raise FirmwareError(
            f"the plan does not fit {base.name}: it needs {peak:,} B of RAM at its peak, the board has "
            f"{base.ram.length:,} B ({format_size(base.ram.length)}, region {base.ram.name}); plan again "
            f"with --budget {base.ram.length // 1024}KB or less"
        )
    t = _relocate(base, proj, int(m["stack_region_bytes"]))
    out = Path(out_dir) if out_dir else proj / "build" / (t.name + ("-profile" if profile else ""))
    res = build(
        t,
        [proj / s for s in m["sources"]],
        include_dirs=[proj / d for d in m["include_dirs"]],
        out_dir=out,
        extra_cflags=EXTRA_CFLAGS,
        defines={**m.get("defines", {}), **({"MT_PROFILE": 1} if profile else {})},
        name="firmware",
    )
    cis = sorted((out / "obj").glob("*.ci"))
    link = m["kind"] == "link"
    roots = ["mt_train_step", "main", "mt_board_c_start", *_HANDLERS]
    if link:
        roots += ["mt_link_service", "mt_fw_link_train"]
    bound = _stack_bound(analyze(roots, cis, res.elf, t.tool("objdump")), t, link)
    fb = FirmwareBuild(proj, t, res, m, bound, profile)
    if bound.training > t.stack_bytes:
        raise FirmwareError(
            f"training needs up to {bound.training} B of stack (mt_train_step {bound.step.describe()}), the "
            f"firmware's stack region has {t.stack_bytes} B (the plan's {m['plan']['stack_reserve_bytes']} B "
            f"reserve minus {m['runtime_reserve_bytes']} B of runtime data): plan with a larger stack reserve"
        )
    link_ram = int(m.get("link_ram_bytes", 0))
    if not profile and res.size.ram_bytes > peak + link_ram:
        s = res.size
        extra = f" plus {link_ram:,} B of serial link" if link_ram else ""
        raise FirmwareError(
            f"the linked firmware takes {s.ram_bytes:,} B of RAM (stack {s.stack_bytes:,} + .data "
            f"{s.data_bytes:,} + .bss {s.bss_bytes:,}), more than the plan's peak of {peak:,} B{extra}: the "
            f"runtime's static data exceeds the {m['runtime_reserve_bytes']} B the firmware keeps for it"
        )
    return fb


# ---- run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareRun:
    run: RunResult
    report: dict[str, Any]  # parsed from the UART output (see parse_report)

    @property
    def exit_code(self) -> int | None:
        return self.run.exit_code

    @property
    def outcome(self) -> str:
        if self.run.timed_out:
            return self.run.message
        names = {v: k for k, v in EXIT_CODES.items()}
        return names.get(self.run.exit_code or 0, f"exit status {self.run.exit_code}")


def run_firmware(fb: FirmwareBuild, timeout_s: float = 60.0) -> FirmwareRun:
    """Run a build in QEMU under ``timeout_s`` (QEMU is killed at the limit: ``run.timed_out``)."""
    if not fb.target.runs_in_qemu:
        raise FirmwareError(f"{fb.target.name} runs on hardware only: flash {fb.elf} to the board")
    r = run_qemu(fb.target, fb.elf, timeout_s=timeout_s)
    return FirmwareRun(r, parse_report(r.stdout))


_REPORT_RES = {
    "instret_mean": re.compile(r"instret per step: mean (\d+) min (\d+) max (\d+) \(resolution (\d+)\)"),
    "errors": re.compile(r"max error: loss (\S+) \(tolerance (\S+)\), parameters (\S+) \(tolerance (\S+)\)"),
    "stack_step": re.compile(r"stack used: (\d+) B by the training steps of (\d+) B"),
    "stack_all": re.compile(r"stack used: (\d+) B in all"),
}


def parse_report(stdout: str) -> dict[str, Any]:
    """The numbers of the firmware's UART report."""
    out: dict[str, Any] = {"passed": "\nPASS\n" in "\n" + stdout}
    if m := _REPORT_RES["instret_mean"].search(stdout):
        out.update(
            instret_mean=int(m[1]), instret_min=int(m[2]), instret_max=int(m[3]), instret_resolution=int(m[4])
        )
    if m := _REPORT_RES["errors"].search(stdout):
        out.update(loss_err=float(m[1]), tol_loss=float(m[2]), param_err=float(m[3]), tol_param=float(m[4]))
    if m := _REPORT_RES["stack_step"].search(stdout):
        out.update(stack_step=int(m[1]), stack_size=int(m[2]))
    if m := _REPORT_RES["stack_all"].search(stdout):
        out["stack_all"] = int(m[1])
    prof = {
        name: (int(calls), int(n))
        for name, calls, n in re.findall(r"^profile (\w+) calls=(\d+) instret=(\d+)$", stdout, re.MULTILINE)
    }
    if prof:
        out["profile"] = prof
    if m := re.search(r"^FAIL: (.*)$", stdout, re.MULTILINE):
        out["failure"] = m[1]
    return out


def profile_table(manifest: dict[str, Any], report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per profile id: calls and instructions per training step (the hook's own cost subtracted), the
    step's MACs (or elements) and instructions per MAC (or element)."""
    prof = report.get("profile", {})
    steps = int(manifest["steps"])
    pairs, cal = prof.get("calibration", (0, 0))
    per_pair = cal / pairs if pairs else 0.0
    rows = []
    for pid in manifest["profile_ids"]:
        calls, n = prof.get(pid, (0, 0))
        instr = max(0.0, (n - calls * per_pair) / steps)
        work = manifest["macs"].get(pid, 0)
        rows.append(
            {
                "id": pid,
                "calls": calls // steps,
                "instret": instr,
                "work": work,
                "mac": is_mac_id(pid),
                "per_work": instr / work if work else float("nan"),
            }
        )
    return rows


def make_standalone(project: str | Path, target: str, timeout_s: float = 300) -> Path:
    """``make -f Makefile.<target>`` in the project (the user's build without Python); returns the ELF."""
    proj = Path(project).resolve()
    r = subprocess.run(
        ["make", "-s", "-j2", "-f", f"Makefile.{target}"],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if r.returncode != 0:
        raise FirmwareError(f"make -f Makefile.{target} failed in {proj}:\n{r.stdout}{r.stderr}")
    return proj / "build" / target / "firmware.elf"
