"""The RAM of the serial-link firmware around the training step (docs/protocol.md), countable at plan time.

A plan made with ``--app link`` (:class:`~mcutrain.train.update_plan.LinkApp`) counts these bytes in its
peak (category ``serial_link``), so that the budget covers the whole firmware; otherwise the firmware
build counts them on top of the plan. Either way the numbers are these.
"""

from __future__ import annotations

import math

from mcutrain.core import ir
from mcutrain.core.units import F32
from mcutrain.train.trainable import checkpoint_state_names, trainable_bytes, trainable_names
from mcutrain.train.update_plan import LinkApp, UpdatePlan

#: RAM of the link firmware beyond its frame buffer and output: mt_link_t (100 B) and the statistics.
LINK_STATE_BYTES = 192
#: The frame buffer's bounds (MT_LINK_MIN_FRAME, MT_LINK_MAX_FRAME of firmware/link/mt_link.h).
MIN_FRAME_BYTES, MAX_FRAME_BYTES = 320, 6144


def link_frame_bytes(graph: ir.Graph, plan: UpdatePlan) -> int:
    """Frame buffer of the link firmware: the model's largest SAMPLE with float32 blocks (header, sample
    header, three block headers, CRC), 4-aligned, between MT_LINK_MIN_FRAME and MT_LINK_MAX_FRAME. Larger
    models must send integer encodings (u8/i16/label/bits); parameters always travel in chunks."""
    numel_in = math.prod(graph.inputs[0][1])
    numel_t = plan.loss.target_numel(graph.shapes[graph.outputs[0]])
    n = 8 + 8 + 3 * 16 + F32 * numel_in + F32 * numel_t * (2 if plan.loss.masked else 1) + 4
    return min(MAX_FRAME_BYTES, max(MIN_FRAME_BYTES, (n + 3) // 4 * 4))


#: The reservoir's state: xorshift32 state, samples seen, slots filled (uint32 each).
REPLAY_STATE_BYTES = 12


def replay_sample_bytes(numel_in: int, numel_t: int, masked: bool = True) -> int:
    """One sample as the reservoir stores it, as it arrived on the link: uint8 input, int16 targets,
    validity bits rounded up to bytes, the input's and the target's float32 scale and offset
    (MT_REPLAY_SLOT_BYTES of firmware/link/mt_link.h; mcutrain.demos.replay)."""
    return numel_in + 2 * numel_t + ((numel_t + 7) // 8 if masked else 0) + 4 * F32


def link_memory(graph: ir.Graph, plan: UpdatePlan, app: LinkApp) -> dict[str, int]:
    """Bytes of the link firmware by part: frame buffer, model output, link state, validation slots
    (input, target and mask of each), the snapshot (trainable values and optimizer moments, step) and,
    with ``replay_slots``, the replay reservoir (its samples as they arrived, and its state); with ``blend``,
    the running mean of the targets and the blended prediction."""
    numel_in = math.prod(graph.inputs[0][1])
    numel_t = plan.loss.target_numel(graph.shapes[graph.outputs[0]])
    trainable = sum(t for t, _ in trainable_bytes(graph, plan).values()) // F32
    vectors = len(checkpoint_state_names(graph, plan)) // max(1, len(trainable_names(graph, plan)))
    parts = {
        "frame": link_frame_bytes(graph, plan),
        "output": F32 * math.prod(graph.shapes[graph.outputs[0]]),
        "state": LINK_STATE_BYTES,
        "validation": F32 * app.val_slots * (numel_in + numel_t * (2 if plan.loss.masked else 1)),
        "snapshot": F32 * trainable * vectors + 4 if app.snapshot else 0,
    }
    if app.replay_slots:  # absent without a reservoir (the emitted projects stay as they were)
        per = replay_sample_bytes(numel_in, numel_t, plan.loss.masked)
        parts["replay"] = app.replay_slots * per + REPLAY_STATE_BYTES
    if app.blend is not None:  # float32 means, uint32 counts, the blended prediction (mt_blend_t)
        parts["blend"] = 3 * 4 * numel_t
    return parts
