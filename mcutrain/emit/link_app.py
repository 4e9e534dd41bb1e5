"""The serial-link firmware (``--app link``, docs/protocol.md): its options, its RAM (counted in the plan when
it was made with ``--app link``, else on top of it) and its template data.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

from mcutrain.boards.targets import Target
from mcutrain.core import ir
from mcutrain.emit.c_text import c_float
from mcutrain.train.app_memory import link_memory
from mcutrain.train.trainable import checkpoint_state_names, trainable_names
from mcutrain.train.update_plan import LinkApp, LossKind, PlanError, UpdatePlan

#: Device side of the serial link (firmware/link/), compiled into the link firmware.
LINK_SOURCES = ("mt_link.c", "mt_link_sample.c", "mt_link_service.c", "mt_link_replay.c", "mt_link_blend.c")
#: Storage backends of the link firmware's CHECKPOINT PERSIST: a semihosting file standing in for flash
#: (Arm boards under QEMU). Its sources, besides LINK_SOURCES.
STORAGE_SOURCES = {"semihost": ("bsp/link/mt_store.c", "bsp/boards/common/mt_semihost.c")}
#: The storage file of the semihost backend, relative to QEMU's working directory.
DEFAULT_STORAGE_FILE = "mcutrain_state.bin"


def eval_metric(graph: ir.Graph, plan: UpdatePlan) -> str | None:
    """What EVAL reports as its metric: accuracy (cross-entropy with one output per class), RMSE (MSE
    loss: the square root of each sample's loss), mean absolute error (L1), or None (NaN on the wire)."""
    if plan.loss.kind is LossKind.XENT:
        numel = math.prod(graph.shapes[graph.outputs[0]])
        return "accuracy" if numel == plan.loss.target_numel(graph.shapes[graph.outputs[0]]) else None
    return {LossKind.MSE: "rmse", LossKind.L1: "mae"}.get(plan.loss.kind)


def link_app(
    plan: UpdatePlan, val_slots: int = 0, snapshot: bool | None = None, storage: str | None = None
) -> LinkApp:
    """The link firmware to emit: the plan's (``--app link`` at plan time) or one from the emit options;
    options that contradict the plan's are an error."""
    if plan.app is None:
        return LinkApp.make(val_slots, snapshot, storage)
    asked = replace(  # the reservoir is the plan's (its slots and schedule are compiled in)
        plan.app,
        val_slots=val_slots or plan.app.val_slots,
        snapshot=plan.app.snapshot if snapshot is None else snapshot,
        storage=storage or plan.app.storage,
    )
    if asked != plan.app:
        raise PlanError(
            f"the plan counts the RAM of a link firmware with {plan.app}; emitting one with {asked} would "
            "exceed it: drop the emit options (they come from the plan) or plan again with them"
        )
    return plan.app


def link_template_data(
    graph: ir.Graph,
    plan: UpdatePlan,
    t: Target,
    accumulators: tuple[str, ...],
    plan_peak: int,
    app: LinkApp,
    storage_file: str,
) -> tuple[dict[str, Any], dict[str, int], int, list[str]]:
    """Template data, RAM by part (firmware.json ``link_memory``), the RAM the link adds to the plan's
    peak (0 when the plan counts it) and the extra sources of the link firmware; checks the options and
    that the plan plus the link fit the board's RAM."""
    if app.storage == "semihost" and (t.arch != "arm" or not t.runs_in_qemu):
        raise PlanError(f"semihost storage needs an Arm board under QEMU; {t.name} is not: use storage=None")
    if not re.fullmatch(r"[\w./-]{1,100}", storage_file):
        raise PlanError(f"storage file {storage_file!r}: use 1..100 letters, digits, '.', '_', '-', '/'")
    memory = link_memory(graph, plan, app)
    extra = 0 if plan.app is not None else sum(memory.values())
    if plan_peak + extra > t.ram.length:
        raise PlanError(
            f"the link firmware needs {plan_peak + extra:,} B of RAM on {t.name} (plan {plan_peak:,} B, link "
            + ", ".join(f"{k} {v:,} B" for k, v in memory.items())
            + f"), the board has {t.ram.length:,} B: use fewer validation or replay slots, or snapshot=False"
        )
    data = {
        "link_frame": memory["frame"],
        "param_names": trainable_names(graph, plan),
        "plan_summary": _c_string(plan_summary(plan))[:96],
        "input_chw": _chw(graph.inputs[0][1]),
        "val_slots": app.val_slots,
        "snapshot": app.snapshot,
        "state_names": checkpoint_state_names(graph, plan),
        "accumulators": list(accumulators),
        "batch": plan.batch,
        "storage": app.storage is not None,
        "storage_file": storage_file,
        "metric": eval_metric(graph, plan),
        "replay": _replay_data(app, memory.get("replay", 0)),
        "blend": _blend_data(app, plan, memory.get("blend", 0)),
    }
    return data, memory, extra, list(STORAGE_SOURCES.get(app.storage or "", ()))


def _replay_data(app: LinkApp, nbytes: int) -> dict[str, int] | None:
    """The reservoir's compile-time configuration (None: none) and its RAM as the plan counts it."""
    if not app.replay_slots:
        return None
    return {
        "slots": app.replay_slots,
        "steps": app.replay_steps,
        "new": int(app.replay_new),
        "seed": app.replay_seed,
        "bytes": nbytes,
    }


def _blend_data(app: LinkApp, plan: UpdatePlan, nbytes: int) -> dict[str, Any] | None:
    """INFER BLEND's weight (a C literal and as written), whether the targets are zones, its RAM."""
    if app.blend is None:
        return None
    zones = plan.loss.zone is not None
    return {"a": c_float(app.blend), "weight": f"{app.blend:g}", "zones": zones, "bytes": nbytes}


def plan_summary(plan: UpdatePlan) -> str:
    """One line for INFO: strategy, optimizer, learning rate, batch."""
    o = plan.optimizer
    return f"{plan.strategy} {o.kind.value} lr={o.lr:g} batch={plan.batch}"


def _c_string(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _chw(shape: tuple[int, ...] | list[int]) -> tuple[int, int, int]:
    dims = [int(d) for d in shape][-3:]
    return tuple([1] * (3 - len(dims)) + dims)  # type: ignore[return-value]
