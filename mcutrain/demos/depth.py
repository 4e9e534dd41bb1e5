"""`mcutrain demo depth`: the motivating case end to end on synthetic data.

The depth network pre-trained on synthetic domain A meets domain B ("the field"). mcutrain plans a
sparse update at 1/2.2 of the full update's memory, compiles it into firmware for a Cortex-M4F
(mps2-an386), runs it in QEMU, streams domain-B camera frames with their 8x8 ToF zones (the only labels)
over the serial link, watches the loss, pulls the trained parameters back and measures depth RMSE on
held-out domain-B frames before and after, against dense ground truth and against the ToF zones. The
simulator trains on the same samples in the same order; the device's parameters must equal its.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcutrain import api
from mcutrain.core import ir, semantics
from mcutrain.core.units import format_bytes
from mcutrain.data.scenes import SceneBatch, generate
from mcutrain.demos.adaptation import device_link, stream_samples
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.selftest import rel_diff
from mcutrain.host import Block, Sample
from mcutrain.train.plan_file import write_plan
from mcutrain.train.scoring import Calibration
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors, unflatten_params
from mcutrain.train.update_plan import LossConfig, LossKind, OptimizerConfig, OptimizerKind, ZoneSpec
from mcutrain.zoo.depth import MAX_DEPTH_M, depth_errors

BOARD = "mps2-an386"
RATIO = 2.2  # the published case: sparse update at 2.2x less memory than the full update


@dataclass
class DepthDemoConfig:
    stream: int = 600  # domain-B frames streamed to the device
    test: int = 128  # held-out domain-B frames
    lr: float = 3e-4
    seed: int = 101
    out: Path = Path("out/demo-depth")
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _samples(b: SceneBatch) -> list[Sample]:
    """Camera frames as uint8 and ToF distances as int16 millimetres: bytes on the link, not floats."""
    return [
        Sample(
            Block.u8(b.image[i].ravel()),
            Block.i16(b.tof_mm[i].ravel(), scale=1e-3 / MAX_DEPTH_M),
            Block.bits(b.tof_valid[i].ravel()),
            sample_id=i,
        )
        for i in range(len(b.image))
    ]


def _decoded(samples: list[Sample], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exactly the floats the device computes from the samples (for the simulator)."""
    x = np.stack([s.input.to_floats() for s in samples]).reshape(len(samples), *shape)
    t = np.stack([s.target.to_floats(role="target") for s in samples])
    m = np.stack([s.mask.to_floats(role="mask") for s in samples])
    return x, t, m


def rmse(graph: ir.Graph, b: SceneBatch) -> tuple[float | None, float]:
    """(dense RMSE or None without dense ground truth, ToF-zone RMSE) in metres of ``graph``."""
    preds = []
    for i in range(0, len(b.image), 256):
        x = torch.from_numpy((b.image[i : i + 256, None] / 255.0).astype(np.float32))
        preds.append(semantics.forward(graph, x)[:, 0].numpy() * MAX_DEPTH_M)
    return depth_errors(np.concatenate(preds), b)


def run(cfg: DepthDemoConfig) -> dict[str, Any]:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    say = print
    g = api.load("depth")
    stream = generate("B", cfg.stream, seed=cfg.seed)
    test = generate("B", cfg.test, seed=cfg.seed + 1000)
    f = stream.footprint
    loss = LossConfig(LossKind.BERHU, masked=True, zone=ZoneSpec(f.top, f.left, f.zone_h, f.zone_w))
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=cfg.lr)
    samples = _samples(stream)
    x, t, m = _decoded(samples, g.inputs[0][1])

    say(f"[1/6] plan: {g.name}, {g.num_params():,} parameters; loss: masked berHu on 8x8 ToF zones")
    full = api.plan(g, None, "full", loss=loss, optimizer=opt)
    budget = int(full.memory.peak_ram_bytes / RATIO)
    calib = Calibration(x[:64], t[:64], m[:64])
    res = api.plan(
        g, budget, "auto", calib=calib, loss=loss, optimizer=opt, score="proxy" if cfg.quick else "measured"
    )
    plan, peak = res.plan, res.memory.peak_ram_bytes
    ratio = full.memory.peak_ram_bytes / peak
    say(
        f"      full update {format_bytes(full.memory.peak_ram_bytes)}, sparse update {format_bytes(peak)} "
        f"({ratio:.2f}x less; budget {format_bytes(budget)}): {len(plan.trained)} of "
        f"{len(g.trainable_nodes())} layers updated"
    )
    write_plan(out / "plan.json", plan, res.memory, "depth", g.inputs[0][1])

    say(f"[2/6] emit + build firmware for {BOARD} (Cortex-M4F)")
    proj = emit_firmware(g, plan, out / "fw", BOARD, app="link")
    fb = build_firmware(proj.out_dir)
    for line in fb.summary().splitlines()[:3]:
        say(f"      {line.strip()}")

    say("[3/6] simulator on the same samples (float32, and float64 as the yardstick of round-off)")
    sim = Simulator(g, plan)
    sim64 = Simulator(g, plan, dtype=torch.float64)
    sim_losses = []
    for i in range(len(x)):
        sim_losses.append(sim.train_step(x[i : i + 1], t[i : i + 1], m[i : i + 1]))
        sim64.train_step(x[i : i + 1], t[i : i + 1], m[i : i + 1])
    want = np.concatenate([v for _, v in trainable_vectors(g, plan, sim.numpy_params())])
    exact = np.concatenate([v for _, v in trainable_vectors(g, plan, sim64.numpy_params())])
    floor = rel_diff(want, exact)

    say(f"[4/6] QEMU: stream {len(samples)} domain-B frames + ToF zones over the serial link")
    t0 = time.perf_counter()
    with device_link(fb, g) as link:
        dev_losses = stream_samples(link, samples, desc="      training")
        instr = int(link.device_stats().last_step_instr)
        got = link.get_params()
    wall = time.perf_counter() - t0

    say(f"[5/6] evaluate on {len(test)} held-out domain-B frames")
    trained = g.replace(params=unflatten_params(g, plan, got))
    before, after = rmse(g, test), rmse(trained, test)
    sim_after = rmse(sim.trained_graph(), test)
    param_err = rel_diff(got, want)
    dense = f"dense RMSE {before[0]:.3f} m -> {after[0]:.3f} m; " if before[0] is not None else ""
    say(f"      {dense}ToF-zone RMSE {before[1]:.3f} m -> {after[1]:.3f} m")
    say(
        f"      device vs simulator: parameters differ by {param_err:.1e} (relative; the float32 simulator "
        f"itself differs by {floor:.1e} from float64); simulator's zone RMSE {sim_after[1]:.3f} m"
    )
    say(
        f"      {instr:,} instructions per training sample on the M4F; "
        f"{len(samples) / wall:.1f} frames/s in QEMU"
    )

    say("[6/6] plots")
    _plots(out, dev_losses, sim_losses, before, after, g, trained, test)
    result = {
        "demo": "depth",
        "board": BOARD,
        "samples": len(samples),
        "data": {"dataset": "synthetic domain B", "test_frames": len(test), "lr": cfg.lr},
        "metrics_before": {"dense_rmse_m": before[0], "zone_rmse_m": before[1]},
        "metrics_after": {"dense_rmse_m": after[0], "zone_rmse_m": after[1]},
        "simulator_after": {"dense_rmse_m": sim_after[0], "zone_rmse_m": sim_after[1]},
        "device_vs_simulator_param_rel_err": param_err,
        "simulator_float32_vs_float64_param_rel_err": floor,
        "budget_bytes": budget,
        "peak_ram_bytes": peak,
        "full_update_peak_ram_bytes": full.memory.peak_ram_bytes,
        "memory_ratio": ratio,
        "instructions_per_sample": instr,
        "plots": [str(out / "depth-demo-loss.png"), str(out / "depth-demo-examples.png")],
    }
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _plots(
    out: Path,
    dev: list[float],
    sim: list[float],
    before: tuple[float, float],
    after: tuple[float, float],
    g0: ir.Graph,
    g1: ir.Graph,
    test: SceneBatch,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.plot(dev, lw=0.8, label="device (QEMU)")
    a.plot(sim, lw=0.8, ls="--", label="simulator")
    k = max(1, len(dev) // 20)
    a.plot(np.convolve(dev, np.ones(k) / k, mode="valid"), lw=2, label=f"device, mean of {k}")
    a.set_xlabel("sample")
    a.set_ylabel("zone berHu loss")
    a.legend()
    a.set_title("on-device training with ToF pseudo-labels")
    if before[0] is not None:
        b.bar([0, 1], [before[0], after[0]], width=0.35, label="dense")
    b.bar([0.4, 1.4], [before[1], after[1]], width=0.35, label="ToF zones")
    b.set_xticks([0.2, 1.2], ["pre-trained (A)", "after on-device"])
    b.set_ylabel("RMSE on held-out frames (m)")
    b.legend()
    fig.tight_layout()
    fig.savefig(out / "depth-demo-loss.png", dpi=110)
    plt.close(fig)
    n = min(4, len(test.image))
    x = torch.from_numpy((test.image[:n, None] / 255.0).astype(np.float32))
    p0 = semantics.forward(g0, x)[:, 0].numpy() * MAX_DEPTH_M
    p1 = semantics.forward(g1, x)[:, 0].numpy() * MAX_DEPTH_M
    truth, truth_title = test.depth, "true depth"
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.1 * n), squeeze=False)
    for i in range(n):
        for j, (img, title) in enumerate(
            ((test.image[i], "camera"), (truth[i], truth_title), (p0[i], "before"), (p1[i], "after"))
        ):
            ax = axes[i, j]
            ax.imshow(
                img,
                cmap="gray" if j == 0 else "viridis",
                vmin=None if j == 0 else 0,
                vmax=None if j == 0 else 6,
            )
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out / "depth-demo-examples.png", dpi=100)
    plt.close(fig)
