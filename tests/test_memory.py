"""The memory model against numbers worked out by hand, and its invariants."""

from __future__ import annotations

import pytest
from graphs import residual, small_cnn, tiny_mlp

from mcutrain.core.units import parse_bytes
from mcutrain.train.derive import derive
from mcutrain.train.memory import analyze
from mcutrain.train.schedule import Interval, lower_bound, place
from mcutrain.train.update_plan import LayerUpdate, OptimizerConfig, OptimizerKind, UpdatePlan


def _plan(g, layers, **kw) -> UpdatePlan:
    return UpdatePlan(g.name, g.fingerprint(), "test", tuple(layers), **kw)


def test_tiny_mlp_last_layer_by_hand() -> None:
    g = tiny_mlp()
    rep = analyze(g, _plan(g, [LayerUpdate.weights("fc2", 2)]))
    # fc2: W 2x3 + b 2 = 8 floats in RAM; fc1: 12 + 3 floats frozen in flash
    assert rep.categories["trainable_weights"] == 32
    assert rep.flash_bytes == 60
    # x (4 floats) + one-hot target (2 floats)
    assert rep.categories["io_buffers"] == 24
    # step 4 (fc2 weight gradient) holds: relu output 12 B -> 16 (saved for the weight gradient),
    # g_fc2 8 B, gw 24 B, gb 8 B  => 56 B; the greedy placement reaches it
    assert rep.arena_lower_bound == 56
    assert rep.arena_bytes == 56
    assert rep.categories["saved_activations"] == 16
    assert rep.categories["gradients"] == 32
    assert rep.categories["backward_working"] == 8
    assert rep.peak_ram_bytes == 32 + 24 + 2048 + 56
    assert sum(rep.categories.values()) == rep.peak_ram_bytes
    # inference: fc1 and relu share storage (in place), then fc2
    assert rep.infer_arena_bytes == 24


def test_optimizer_state_is_counted() -> None:
    g = tiny_mlp()
    layers = [LayerUpdate.weights("fc2", 2)]
    sgd = analyze(g, _plan(g, layers))
    mom = analyze(g, _plan(g, layers, optimizer=OptimizerConfig(OptimizerKind.MOMENTUM)))
    adam = analyze(g, _plan(g, layers, optimizer=OptimizerConfig(OptimizerKind.ADAM)))
    assert mom.peak_ram_bytes - sgd.peak_ram_bytes == 32
    assert adam.peak_ram_bytes - sgd.peak_ram_bytes == 64


def test_channel_subset_keeps_frozen_rows_in_flash() -> None:
    g = small_cnn()
    full = analyze(g, _plan(g, [LayerUpdate.weights("fc1", 32)]))
    quarter = analyze(g, _plan(g, [LayerUpdate.weights("fc1", 8)]))
    row = 72 * 4
    assert full.categories["trainable_weights"] - quarter.categories["trainable_weights"] == 24 * row
    assert quarter.flash_bytes - full.flash_bytes == 24 * row


def test_relu_mask_used_when_activation_not_kept() -> None:
    g = small_cnn()
    tg = derive(g, _plan(g, [LayerUpdate.bias_only("fc1")]))
    # relu2 lies between fc2 and fc1's bias: its output is not needed otherwise -> a 1-bit mask
    assert "mask_relu2" in tg.buffers
    assert tg.buffers["mask_relu2"].nbytes == 8  # 32 bits -> 4 bytes, rounded up to 8
    tg2 = derive(g, _plan(g, [LayerUpdate.weights("fc2", 8)]))
    assert "mask_relu2" not in tg2.buffers  # fc2's weight gradient keeps relu2's output anyway


def test_pruned_backward_stops_at_earliest_updated_layer() -> None:
    g = residual()
    tg = derive(g, _plan(g, [LayerUpdate.weights("fc", 5)]))
    assert not [s for s in tg.steps if s.action.value == "bw_igrad"]
    tg = derive(g, _plan(g, [LayerUpdate.bias_only("c2")]))
    igrad_nodes = {s.node for s in tg.steps if s.action.value == "bw_igrad"}
    assert "c2" not in igrad_nodes and "stem" not in igrad_nodes and "proj" not in igrad_nodes
    assert {"fc", "gap", "r2"} <= igrad_nodes
    # the add passes its gradient through: c2's output gradient is a view of it, no copy
    assert "add" not in igrad_nodes and tg.buffers["g_c2"].view_of == "g_add"


def test_more_updates_never_need_less_memory() -> None:
    g = residual()
    names = [n.name for n in g.trainable_nodes()]
    prev = 0
    for k in range(1, len(names) + 1):
        rep = analyze(g, _plan(g, [LayerUpdate.weights(n, g.shapes[n][0]) for n in names[-k:]]))
        assert rep.peak_ram_bytes >= prev
        assert rep.arena_bytes >= rep.arena_lower_bound
        prev = rep.peak_ram_bytes


def test_arena_never_overlaps_live_buffers() -> None:
    g = residual()
    plan = _plan(g, [LayerUpdate.weights(n.name, g.shapes[n.name][0]) for n in g.trainable_nodes()])
    tg = derive(g, plan)
    from mcutrain.train.schedule import schedule

    ap = schedule(tg).train
    spans: dict[str, tuple[int, int]] = {}
    for i, s in enumerate(tg.steps):
        for b in (*s.reads, *s.writes):
            if b in ap.storage_of:
                r = ap.storage_of[b]
                lo, hi = spans.get(r, (i, i))
                spans[r] = (min(lo, i), max(hi, i))
    roots = list(spans)
    for i, a in enumerate(roots):
        for b in roots[i + 1 :]:
            (a0, a1), (b0, b1) = spans[a], spans[b]
            if a0 <= b1 and b0 <= a1:
                oa, ob = ap.offsets[a], ap.offsets[b]
                assert oa + ap.storage_bytes[a] <= ob or ob + ap.storage_bytes[b] <= oa, (a, b)
    assert max(ap.offsets[r] + ap.storage_bytes[r] for r in roots) <= ap.size


def test_place_and_lower_bound() -> None:
    items = [Interval(16, 0, 1), Interval(16, 1, 2), Interval(8, 2, 3), Interval(32, 3, 3)]
    offs, size = place(items)
    assert lower_bound(items) == (40, 3)
    assert size == 40
    assert offs[3] == 0


@pytest.mark.parametrize(
    ("text", "n"), [("256KB", 262144), ("1.2MB", 1258291), ("4096", 4096), ("64 KiB", 65536)]
)
def test_parse_bytes(text: str, n: int) -> None:
    assert parse_bytes(text) == n


def test_parse_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="256KB"):
        parse_bytes("lots")
