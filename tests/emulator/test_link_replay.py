"""The replay reservoir in the link firmware (firmware/link/mt_link_replay.c), in QEMU on mps2-an386 and
rv32-qemu.

A small encoder-decoder (zoo ``tiny_unet``, 1x24x32 uint8 frames, 8x8 int16 zones with validity bits,
masked MSE, SGD with momentum, batch 2) is planned with ``LinkApp(replay_slots=6, replay_steps=2)``; its
firmware stores every SAMPLE with REPLAY as it arrived and trains on the new sample and two replayed ones. The
parameters pulled after a short time-ordered stream must equal the simulator's on
``mcutrain.demos.replay.schedule()`` of the plan's reservoir, and differ from the simulator's on the
schedule of another seed (or without a reservoir) by far more than the round-off tolerance: the device
draws exactly the schedule the simulator runs. The firmware build itself checks that the linked RAM,
the reservoir included, is within the plan's peak.

The same firmware keeps the running mean of the trained-on targets (``LinkApp.blend``, A = 0.6): INFER
BLEND must answer ``A * zones(output) + (1 - A) * mean`` with the mean of ``mcutrain.demos.blend`` over
the streamed samples, each counted once (not per replayed step, not when stored without training).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from conftest import require_board

from mcutrain import api
from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.core import ir
from mcutrain.demos.blend import RunningMean
from mcutrain.demos.replay import ReplayConfig, config_of, schedule
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.host import Block, DeviceError, ErrorCode, Link, ReplayInfo, Sample
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors
from mcutrain.train.update_plan import (
    LossConfig,
    LossKind,
    OptimizerConfig,
    OptimizerKind,
    UpdatePlan,
    ZoneSpec,
)

pytestmark = pytest.mark.emulator

BOARDS = ("mps2-an386", "rv32-qemu")
N = 24  # streamed samples
REPLAY = ReplayConfig(slots=6, replay=2, seed=0x1234567)
BLEND = 0.6  # the network's weight in INFER BLEND
RTOL = 1e-5  # as the other link tests: float32 round-off of the device against the simulator


class Case(NamedTuple):
    fb: FirmwareBuild
    graph: ir.Graph
    plan: UpdatePlan
    samples: list[Sample]
    x: np.ndarray  # the floats the device decodes from the samples
    t: np.ndarray
    m: np.ndarray


@pytest.fixture(scope="module", params=BOARDS)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    board = request.param
    require_board(board)
    g = api.load("tiny_unet")
    loss = LossConfig(LossKind.MSE, masked=True, zone=ZoneSpec(0, 0, 3, 4))
    opt = OptimizerConfig(OptimizerKind.MOMENTUM, lr=0.05)
    plan = api.plan(g, None, "full", loss=loss, optimizer=opt, batch=2, app=REPLAY.app(blend=BLEND)).plan
    assert config_of(plan.app) == REPLAY
    proj = emit_firmware(g, plan, tmp_path_factory.mktemp("replay") / "fw", board, app="link")
    assert proj.manifest["link_memory"]["replay"] == 6 * (16 + 24 * 32 + 2 * 64 + 8) + 12
    assert proj.manifest["link_memory"]["blend"] == 3 * 4 * 64  # sums, counts, the blended zones
    fb = build_firmware(proj.out_dir)  # fails when the linked RAM exceeds the plan's peak
    assert plan.app is not None and fb.size.ram_bytes <= fb.plan_peak_ram  # the plan counts the link's RAM
    # a time-ordered stream: the scene drifts from dark and near to bright and far
    rng = np.random.default_rng(5)
    samples = []
    for i in range(N):
        img = np.clip(rng.normal(40 + 8 * i, 30, (24, 32)), 0, 255).astype(np.uint8)
        mm = (300 + 60 * i + rng.integers(0, 200, 64)).astype(np.int16)
        valid = rng.random(64) > 0.2
        s, o = 1 / (255 * 0.5), -0.5
        samples.append(Sample(Block.u8(img.ravel(), s, o), Block.i16(mm, 1e-3 / 4), Block.bits(valid), i))
    x = np.stack([s.input.to_floats() for s in samples]).reshape(N, *g.inputs[0][1])
    t = np.stack([s.target.to_floats(role="target") for s in samples])
    m = np.stack([s.mask.to_floats(role="mask") for s in samples])
    return Case(fb, g, plan, samples, x, t, m)


def _simulate(c: Case, steps: list[int]) -> np.ndarray:
    sim = Simulator(c.graph, c.plan)
    b = c.plan.batch
    for k in range(len(steps) // b):
        i = steps[k * b : (k + 1) * b]
        sim.train_step(c.x[i], c.t[i], c.m[i])
    return np.concatenate([v for _, v in trainable_vectors(c.graph, c.plan, sim.numpy_params())])


@contextlib.contextmanager
def _link(fb: FirmwareBuild) -> Iterator[Link]:
    port = free_tcp_port()
    with QemuProcess(fb.target, fb.elf, icount=True, serial=SerialTcp(port, nodelay=True)) as q:
        link = Link(q.serial.url, connect_timeout=20.0, timeout=5.0, max_timeout=60.0)  # type: ignore[union-attr]
        try:
            yield link
            assert link.exit_firmware() is not None
        finally:
            link.close()
        assert q.wait(timeout_s=20).exit_code == 0


def test_device_reservoir_runs_the_simulators_schedule(case: Case) -> None:
    c = case
    with _link(c.fb) as link:
        info = link.info
        assert info is not None and info.replay == ReplayInfo(6, REPLAY.seed, 2, True, 0, 0)
        # a few samples, then RESET: the reservoir must start again from its seed, empty
        for s in c.samples[:5]:
            link.sample(s, replay=True)
        assert link.hello().replay == ReplayInfo(6, REPLAY.seed, 2, True, 5, 5)
        link.reset_model()
        assert link.hello().replay == ReplayInfo(6, REPLAY.seed, 2, True, 0, 0)
        acks = [link.sample(s, replay=True) for s in c.samples]
        # the reservoir takes only what it stores as it arrived: a float32 input is refused, nothing changes
        with pytest.raises(DeviceError) as err:
            link.sample(replace(c.samples[0], input=Block.f32(c.x[0]), sample_id=N), replay=True)
        assert err.value.reply.code == ErrorCode.ENCODING
        end = link.hello()
        got = link.get_params()
        stats = link.device_stats()
    steps = schedule(N, REPLAY)
    assert len(steps) == 3 * N
    assert end.replay == ReplayInfo(6, REPLAY.seed, 2, True, N, 6) and end.last_sample_id == N - 1
    assert [a.sample_id for a in acks] == list(range(N)) and not any(a.skipped for a in acks)
    assert acks[-1].step == stats.step == len(steps) // c.plan.batch
    assert stats.samples_trained == len(steps)  # RESET cleared the first five samples' steps

    want = _simulate(c, steps)
    scale = float(np.max(np.abs(want)))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale)
    # another seed's schedule, or each sample three times without a reservoir: far outside the tolerance
    for other in (schedule(N, replace(REPLAY, seed=REPLAY.seed + 1)), [i for i in range(N) for _ in "abc"]):
        assert other != steps
        gap = float(np.max(np.abs(_simulate(c, other) - got)))
        assert gap > 100 * RTOL * scale, gap
    ratio = float(np.max(np.abs(got - want) / (RTOL * scale + RTOL * np.abs(want))))
    diff = float(np.max(np.abs(got - want)))
    print(f"\ndevice vs simulator: max |diff| {diff:.2e} (scale {scale:.3f}), {ratio:.1e} of the tolerance")


def test_the_plan_carries_the_reservoir(case: Case, tmp_path: Path) -> None:
    d = case.plan.to_dict()["app"]
    assert (d["replay_slots"], d["replay_steps"], d["replay_new"], d["replay_seed"]) == (
        6,
        2,
        True,
        0x1234567,
    )
    assert UpdatePlan.from_dict(case.plan.to_dict()) == case.plan
    main = (case.fb.project / "main.c").read_text()
    assert "static const mt_replay_t mt_fw_replay" in main and "0x01234567u" in main


def _zones(y: np.ndarray) -> np.ndarray:
    """The 24x32 output pooled over the plan's 8x8 zones of 3x4 pixels (as mt_zone_pool_fw_f32)."""
    return y.reshape(8, 3, 8, 4).astype(np.float64).mean(axis=(1, 3)).ravel()


def test_infer_blend_shrinks_toward_the_running_mean_of_the_trained_targets(case: Case) -> None:
    c = case
    probe = replace(c.samples[3], target=Block.none(), mask=Block.none(), sample_id=10_000)
    with _link(c.fb) as link:
        assert link.info is not None and link.info.can_blend
        assert link.info.blend is not None and link.info.blend.a == pytest.approx(BLEND)
        for s in c.samples[:4]:
            link.sample(s, replay=True)
        link.reset_model()  # forgets the targets seen
        y0 = link.infer(probe)
        np.testing.assert_allclose(link.infer(blend=True), _zones(y0), rtol=1e-6, atol=1e-6)  # none seen
        for s in c.samples[:12]:
            link.sample(s, replay=True)
        link.sample(replace(c.samples[12], sample_id=12), train=False)  # stored, not trained on: not counted
        for s in c.samples[13:]:
            link.sample(s, replay=True)
        y = link.infer(probe)
        got = link.infer(probe, blend=True)
        assert link.hello().blend.seen == 64  # type: ignore[union-attr]
        assert got.shape == (64,)
    counted = [i for i in range(N) if i != 12]
    rm = RunningMean(64)
    for i in counted:
        rm.observe(c.t[i], c.m[i])
    assert np.all(rm.count > 0)
    want = rm.blend(_zones(y), BLEND)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the mean counts each trained sample once: with sample 12, or per training step, it differs
    for other in ([*range(N)], schedule(N, REPLAY)):
        alt = RunningMean(64)
        for i in other:
            alt.observe(c.t[i], c.m[i])
        assert float(np.max(np.abs(alt.blend(_zones(y), BLEND) - got))) > 100 * 1e-5 * float(
            np.max(np.abs(got))
        )
