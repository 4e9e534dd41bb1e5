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


def link_memory(graph: ir.Graph, plan: UpdatePlan, app: LinkApp) -> dict[str, int]:
    """Bytes of the link firmware by part: frame buffer, model output, link state, validation slots
    (input, target and mask of each) and the snapshot (trainable values and optimizer moments, step)."""
    numel_in = math.prod(graph.inputs[0][1])
    numel_t = plan.loss.target_numel(graph.shapes[graph.outputs[0]])
    trainable = sum(t for t, _ in trainable_bytes(graph, plan).values()) // F32
    vectors = len(checkpoint_state_names(graph, plan)) // max(1, len(trainable_names(graph, plan)))
    return {
        "frame": link_frame_bytes(graph, plan),
        "output": F32 * math.prod(graph.shapes[graph.outputs[0]]),
        "state": LINK_STATE_BYTES,
        "validation": F32 * app.val_slots * (numel_in + numel_t * (2 if plan.loss.masked else 1)),
        "snapshot": F32 * trainable * vectors + 4 if app.snapshot else 0,
    }
