"""The serial-link firmware: its options, RAM and template data."""

from __future__ import annotations

import math
import re
from typing import Any

from mcutrain.boards.targets import Target
from mcutrain.core import ir
from mcutrain.train.trainable import checkpoint_state_names, trainable_names
from mcutrain.train.update_plan import LossKind, PlanError, UpdatePlan

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

