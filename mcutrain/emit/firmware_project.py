"""Firmware projects for the boards: the generated training step plus a board ``main.c``, ready to
cross-build (:mod:`mcutrain.emit.firmware_build`) and run in QEMU (:mod:`mcutrain.emit.firmware_run`).

``emit_firmware()`` writes :func:`mcutrain.emit.model_c.emit`'s project and adds:

* ``main.c``: a self-test (``codegen/fw_selftest_main.c.j2``, :mod:`mcutrain.emit.selftest`) that trains N
  embedded samples and compares with the simulator, exiting non-zero on a mismatch; the serial-link
  firmware (``codegen/fw_link_main.c.j2``, :mod:`mcutrain.emit.link_app`); or a *footprint* firmware whose
  input/target/mask live in RAM as in an application;
* ``mt_profile.h``: the ``MT_PROFILE`` hook of ``mt_model.c`` counting instructions per kernel kind and pass;
* ``bsp/``: a copy of the board support package, and ``Makefile.<target>`` (the same flags, sources and
  stack as the build), so the folder builds anywhere with ``make`` and the cross compiler;
* ``firmware.json``: the manifest the build and run steps read (target, plan numbers, stack, sources).

RAM: the plan's ``stack_reserve_bytes`` pays for the call stack *and* the board runtime's static data
(UART/counter state, picolibc's stdio and TLS, the harness). The firmware links a stack region of the
reserve minus ``RUNTIME_DATA_BYTES`` (:mod:`mcutrain.train.update_plan`); the build checks that the static
stack bound fits that region and that the linked RAM (stack + .data + .bss) is within the plan's peak.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mcutrain import __version__
from mcutrain.boards.cross_build import COMMON_CFLAGS
from mcutrain.boards.qemu import qemu_command
from mcutrain.boards.targets import Target, firmware_dir, load_target
from mcutrain.core import ir
from mcutrain.emit import pulp
from mcutrain.emit.c_text import c_array, c_float
from mcutrain.emit.calls import profile_id
from mcutrain.emit.link_app import DEFAULT_STORAGE_FILE, LINK_SOURCES, link_app, link_template_data
from mcutrain.emit.model_c import Emitted, plan_define_flags, plan_defines, write_project
from mcutrain.emit.output_dir import staged
from mcutrain.emit.selftest import EXIT_CODES, LOSS_FLOOR, Expected, SelfTest, expected, param_scale
from mcutrain.emit.templates import template_env
from mcutrain.train.derive import TrainGraph
from mcutrain.train.update_plan import RUNTIME_DATA_BYTES, PlanError, Update, UpdatePlan

MANIFEST = "firmware.json"
EXTRA_CFLAGS = ("-fno-math-errno", "-fcallgraph-info=su")
#: main.c variants of emit_firmware(app=...): None (footprint or self-test) and the serial link.
APPS = (None, "link")


class FirmwareError(RuntimeError):
    """A firmware project that cannot be emitted, built or run as asked; the message says why."""


# ---- emit ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareProject:
    out_dir: Path
    target: Target
    emitted: Emitted
    manifest: dict[str, Any]
    expected: Expected | None


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
    if app != "link" and plan.app is not None:
        raise PlanError("the plan counts the RAM of a serial-link firmware: emit it with app='link'")
    if app == "link" and selftest is not None:
        raise PlanError("a firmware is either a self-test or the serial link, not both")
    t = load_target(target) if isinstance(target, str) else target
    pulp.check_precision(precision, t)
    stack = plan.stack_region_bytes
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
    final = Path(out_dir).resolve()
    with staged(final) as out:
        em = write_project(graph, plan, out, t, precision)
        profile_ids = em.profile_ids

        bsp = out / "bsp"
        if bsp.exists():
            shutil.rmtree(bsp)
        fw = firmware_dir()
        shutil.copytree(fw / "include", bsp / "include")
        shutil.copytree(fw / "boards" / "common", bsp / "boards" / "common")
        shutil.copytree(t.board_dir, bsp / "boards" / t.name)
        if app == "link":
            shutil.copytree(fw / "link", bsp / "link")
        local = relocate_target(t, out, stack)
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
            "plan_defines": plan_define_flags(plan),
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
                {"name": n, "n": v.size, "values": c_array(v), "scale": c_float(param_scale(v))}
                for n, v in exp.params
            ]
            data["tol_losses"] = c_array(exp.tol_losses)
            data["tol_param"] = c_float(exp.tol_param)
        link_memory: dict[str, int] = {}
        link_srcs: list[str] = []
        link_ram = 0  # what the link adds to the plan's peak (0 when the plan counts it)
        if app == "link":
            la = link_app(plan, val_slots, snapshot, storage)
            link_data, link_memory, link_ram, link_srcs = link_template_data(
                graph, plan, t, em.accumulators, em.memory.peak_ram_bytes, la, storage_file
            )
            data.update(link_data)
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
        kernel_defines.update(plan_defines(plan))
        if app == "link":
            srcs += [f"bsp/link/{f}" for f in LINK_SOURCES] + link_srcs
            include_dirs.append("bsp/link")
        if t.cluster is not None:  # the PULP cluster layer and its PMSIS (docs/gap9.md)
            cl_srcs, cl_incs = pulp.project_sources(t, out)
            srcs += cl_srcs
            include_dirs += cl_incs
        rel = lambda p: str(Path(p).relative_to(out))  # noqa: E731
        defines = " ".join(f"-D{k}={_make_quote(v)}" for k, v in {**t.c_defines(), **kernel_defines}.items())
        makefile = env.get_template("fw_Makefile.j2").render(
            **data,
            kind={"selftest": "self-test", "link": "serial-link"}.get(kind, kind),
            stack_bytes=stack,
            runtime_reserve=RUNTIME_DATA_BYTES,
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
            makefile = pulp.sdk_makefile(env, data, t, srcs, include_dirs)
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
            "runtime_reserve_bytes": RUNTIME_DATA_BYTES,
            "sources": srcs,
            "include_dirs": include_dirs,
            "defines": kernel_defines,
            "profile_ids": profile_ids,
            "steps": data["steps"],
            "selftest": None
            if exp is None
            else {
                "tol_loss": exp.tol_loss,
                "tol_losses": [float(v) for v in exp.tol_losses],
                "tol_param": exp.tol_param,
                "noise_loss": exp.noise_loss,
                "noise_param": exp.noise_param,
                "losses": [float(v) for v in exp.losses],
            },
            "macs": step_macs(em.memory.train_graph),
            "cluster": em.cluster.to_dict() if em.cluster is not None else None,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    em = replace(em, out_dir=final)
    return FirmwareProject(final, t, em, manifest, exp)


def _make_quote(v: str) -> str:
    return f"'{v}'" if '"' in v else v


def relocate_target(t: Target, project: Path, stack: int) -> Target:
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


def step_macs(tg: TrainGraph) -> dict[str, int]:
    """Multiply-accumulates of one training step per profile id (``<kind>_<pass>``): conv, transposed
    conv and linear count their MACs (weight gradients only over the trained rows, none for a bias-only
    update); every other kernel counts one per output element. Sum of the MAC kinds: ``macs_total``."""
    graph, plan = tg.graph, tg.plan
    out: dict[str, int] = {}
    for s in tg.steps:
        pid = profile_id(graph, s, tg.precision)
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
    """Profile ids whose count is multiply-accumulates (conv/linear fw, fw_s8, bw_wgrad, bw_igrad)."""
    return pid.startswith(MAC_KINDS) and pid.removesuffix("_s8").rsplit("_", 1)[-1] in (
        "fw",
        "wgrad",
        "igrad",
    )
