"""End-to-end parity: the generated C (host build, -ffp-contract=off) against the simulator.

For each model and plan, 20 training steps on the same samples give the same losses and parameters to
1e-5 relative; the arena in the C source equals the plan's bytes. The tolerance only widens where the
float32 simulator itself strays further than that from the same run in float64 (the C may then differ
from it by 4x that measured float32 noise): that happens for the MLPerf ResNet-8, whose raw 0..255
inputs amplify round-off to ~1e-4 over 20 steps (see docs/codegen.md).
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED
from graphs import residual, small_cnn, tiny_mlp

from mcutrain import api
from mcutrain.emit.host_build import HostModel, build_host
from mcutrain.emit.model_c import emit
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import (
    LayerUpdate,
    LossConfig,
    LossKind,
    OptimizerConfig,
    OptimizerKind,
    UpdatePlan,
    ZoneSpec,
)

STEPS = 20


def _samples(g, n: int, seed: int = 0, loss: LossConfig | None = None):
    rng = np.random.default_rng(seed)
    if g.name.startswith("mlperf_tiny_resnet8"):  # real CIFAR-10 test images (raw 0..255) and labels
        d = np.load(SHARED / "datasets" / "cifar10_test_1000.npz")
        idx = rng.permutation(len(d["y"]))[:n]
        return d["x"][idx].transpose(0, 3, 1, 2).astype(np.float32), np.eye(10, dtype=np.float32)[d["y"][idx]]
    if loss is not None and loss.kind is not LossKind.XENT:  # dense regression targets in [0, 1]
        x = rng.standard_normal((n, *g.inputs[0][1])).astype(np.float32)
        numel = loss.target_numel(g.shapes[g.outputs[0]])
        return x, rng.random((n, numel)).astype(np.float32)
    x = rng.standard_normal((n, *g.inputs[0][1]))
    k = g.shapes[g.outputs[0]][0]
    return x.astype(np.float32), np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]


def _parity(g, plan: UpdatePlan, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    em = emit(g, plan, out)
    src = (out / "mt_model.c").read_text()
    assert f"#define MT_ARENA_BYTES {em.memory.arena_bytes}u" in (out / "mt_model.h").read_text()
    assert re.search(rf"_Static_assert\(sizeof\(mt_arena\) == {em.memory.arena_bytes}u", src)
    host = HostModel(build_host(out), g, plan)
    host.lib.mt_scratch_bytes_needed.restype = ctypes.c_size_t
    assert host.lib.mt_scratch_bytes_needed() == em.memory.categories["kernel_scratch"] == 0
    sim = Simulator(g, plan)
    exact = Simulator(g, plan, dtype=torch.float64)  # how much float32 round-off the model amplifies
    x, t = _samples(g, STEPS, loss=plan.loss)
    m = None
    if plan.loss.masked:
        m = (np.random.default_rng(7).random(t.shape) > 0.3).astype(np.float32)
        m[0] = 0.0  # a sample with no valid element at all
    floor = 0.0
    for i in range(STEPS):
        mi = None if m is None else m[i : i + 1]
        rc, loss_c = host.train_step(x[i], t[i], None if m is None else m[i])
        loss_s = sim.train_step(x[i : i + 1], t[i : i + 1], mi)
        loss_x = exact.train_step(x[i : i + 1], t[i : i + 1], mi)
        floor = max(floor, abs(loss_s - loss_x) / max(abs(loss_x), 1e-3))
        assert rc == 0
        # 1e-5 relative, unless PyTorch's own float32 run strays further from exact arithmetic
        assert loss_c == pytest.approx(loss_s, rel=max(1e-5, 4 * floor), abs=1e-6), f"step {i}"
    got, want, ref = host.params(), sim.numpy_params(), exact.numpy_params()
    for k in want:
        scale = float(np.abs(want[k]).max() + 1e-12)
        pfloor = float(np.abs(want[k] - ref[k]).max()) / scale
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=max(1e-5, 4 * pfloor) * scale, err_msg=k)
    # inference of the trained model agrees too (to 1e-5, or 4x the float32 simulator's own distance
    # from the float64 run when the model amplifies round-off more than that)
    want_y = sim.predict(x[:1])[0].numpy().reshape(-1)
    ref_y = exact.predict(x[:1])[0].numpy().reshape(-1)
    ifloor = float(np.abs(want_y - ref_y).max() / (np.abs(ref_y).max() + 1e-12))
    np.testing.assert_allclose(host.infer(x[0]), want_y, rtol=max(1e-5, 4 * ifloor), atol=1e-6)


def _strategy_plan(g, strategy: str, loss: LossConfig, opt: OptimizerConfig | None = None) -> UpdatePlan:
    """full / bias-only / last-layer / subset (a quarter of each layer's channels) / auto (budget halfway
    between last-layer and full)."""
    opt = opt or OptimizerConfig()
    if strategy == "subset":
        return UpdatePlan(
            g.name,
            g.fingerprint(),
            "subset",
            tuple(
                LayerUpdate.weights(n.name, max(1, g.shapes[n.name][0] // 4), bias=i % 2 == 1)
                for i, n in enumerate(g.trainable_nodes())
            ),
            loss=loss,
            optimizer=opt,
        )
    if strategy == "auto":
        full = api.plan(g, None, "full", loss=loss, optimizer=opt).memory.peak_ram_bytes
        last = api.plan(g, None, "last-layer", loss=loss, optimizer=opt).memory.peak_ram_bytes
        return api.plan(g, (full + last) // 2, "auto", score="proxy", loss=loss, optimizer=opt).plan
    return api.plan(g, None, strategy, loss=loss, optimizer=opt).plan


STRATEGIES = ["full", "bias-only", "last-layer", "subset", "auto"]


MODELS = {"tiny_mlp": tiny_mlp, "small_cnn": small_cnn, "residual": residual}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_generated_c_matches_simulator(model: str, strategy: str, tmp_path: Path) -> None:
    g = MODELS[model]()
    _parity(g, _strategy_plan(g, strategy, api.default_loss(g)), tmp_path)


@pytest.mark.parametrize("model", ["mlp", "resnet_block", "mbv2_block", "tiny_unet"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_builtin_pytorch_models(model: str, strategy: str, tmp_path: Path) -> None:
    g = api.load(model)
    _parity(g, _strategy_plan(g, strategy, api.default_loss(g)), tmp_path)


@pytest.mark.parametrize(
    "loss",
    [
        LossConfig(LossKind.MSE),
        LossConfig(LossKind.L1, masked=True),
        LossConfig(LossKind.BERHU, masked=True),
        LossConfig(
            LossKind.BERHU, masked=True, zone=ZoneSpec(top=4, left=4, zone_h=2, zone_w=3, rows=8, cols=8)
        ),
        LossConfig(
            LossKind.L1, masked=True, zone=ZoneSpec(top=0, left=0, zone_h=3, zone_w=4, rows=8, cols=8)
        ),
    ],
    ids=["mse", "l1-masked", "berhu-masked", "berhu-zones", "l1-zones-full-frame"],
)
def test_dense_losses(loss: LossConfig, tmp_path: Path) -> None:
    g = api.load("tiny_unet")
    nodes = g.trainable_nodes()
    plan = UpdatePlan(
        g.name,
        g.fingerprint(),
        "t",
        tuple(LayerUpdate.weights(n.name, g.shapes[n.name][0]) for n in nodes[len(nodes) // 2 :]),
        loss=loss,
        optimizer=OptimizerConfig(lr=0.05),
    )
    _parity(g, plan, tmp_path)


@pytest.mark.parametrize("kind", [OptimizerKind.MOMENTUM, OptimizerKind.ADAM])
def test_optimizers_and_cosine_schedule(kind: OptimizerKind, tmp_path: Path) -> None:
    g = small_cnn()
    cfg = OptimizerConfig(kind, lr=0.01, weight_decay=1e-3, schedule="cosine", total_steps=15)
    plan = api.plan(g, None, "full", optimizer=cfg).plan
    _parity(g, plan, tmp_path)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")
@pytest.mark.parametrize(
    "model", ["st_handposture_vl53l5cx_cnn2d_float", "mlperf_tiny_resnet8_cifar10_float"]
)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_real_models(model: str, strategy: str, tmp_path: Path) -> None:
    g = api.load(SHARED / "models" / f"{model}.tflite")
    # ResNet-8 takes raw 0..255 pixels: per-sample SGD diverges even at lr 1e-6, Adam at 1e-5 is stable
    resnet = model.startswith("mlperf")
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=1e-5) if resnet else OptimizerConfig(lr=0.01)
    _parity(g, _strategy_plan(g, strategy, api.default_loss(g), opt), tmp_path)


def test_nonfinite_loss_changes_nothing(tmp_path: Path) -> None:
    g = small_cnn()
    plan = api.plan(g, None, "full").plan
    emit(g, plan, tmp_path / "gen")
    host = HostModel(build_host(tmp_path / "gen"), g, plan)
    before = host.export_flat()
    x, t = _samples(g, 1)
    t[0, 0] = np.nan  # e.g. a corrupted label
    rc, loss = host.train_step(x[0], t[0])
    assert rc == 1 and not np.isfinite(loss)
    np.testing.assert_array_equal(host.export_flat(), before)


def _write_samples(path: Path, x: np.ndarray, t: np.ndarray, m: np.ndarray | None = None) -> None:
    m = np.ones_like(t) if m is None else m
    recs = np.concatenate([x.reshape(len(x), -1), t.reshape(len(t), -1), m.reshape(len(m), -1)], axis=1)
    recs.astype("<f4").tofile(path)


@pytest.mark.parametrize("model", ["small_cnn", "residual"])
def test_driver_runs_clean_under_asan_and_ubsan(model: str, tmp_path: Path) -> None:
    import subprocess

    g = MODELS[model]()
    nodes = g.trainable_nodes()
    plan = UpdatePlan(
        g.name,
        g.fingerprint(),
        "subset",
        tuple(LayerUpdate.weights(n.name, max(1, g.shapes[n.name][0] // 2)) for n in nodes),
        optimizer=OptimizerConfig(OptimizerKind.ADAM, lr=1e-3),
    )
    out = tmp_path / "gen"
    emit(g, plan, out)
    exe = build_host(out, "mt_train_host_asan")
    x, t = _samples(g, 5)
    _write_samples(tmp_path / "s.bin", x, t)
    r = subprocess.run(
        [str(exe), str(tmp_path / "s.bin"), str(tmp_path / "p.bin")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    losses = [float(line.split()[1]) for line in r.stdout.splitlines()]
    sim = Simulator(g, plan)
    want = [sim.train_step(x[i : i + 1], t[i : i + 1]) for i in range(5)]
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    flat = np.fromfile(tmp_path / "p.bin", dtype="<f4")
    host_flat = np.concatenate(
        [
            np.concatenate(
                [
                    sim.numpy_params()[f"{lu.name}.weight"][: lu.channels].reshape(-1),
                    sim.numpy_params()[f"{lu.name}.bias"],
                ]
            )
            for lu in plan.layers
        ]
    )
    np.testing.assert_allclose(flat, host_flat, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", [OptimizerKind.SGD, OptimizerKind.ADAM])
def test_gradient_accumulation_over_a_minibatch(kind: OptimizerKind, tmp_path: Path) -> None:
    g = residual()
    plan = UpdatePlan(
        g.name,
        g.fingerprint(),
        "t",
        (LayerUpdate.weights("c2", 8), LayerUpdate.weights("fc", 5)),
        optimizer=OptimizerConfig(kind, lr=0.01),
        batch=4,
    )
    em = emit(g, plan, tmp_path / "gen")
    assert em.memory.categories["gradients"] > 0  # persistent gradient buffers are counted as static RAM
    host = HostModel(build_host(tmp_path / "gen"), g, plan)
    sim = Simulator(g, plan)
    x, t = _samples(g, 12)
    for b in range(3):
        losses = [host.train_step(x[i], t[i])[1] for i in range(4 * b, 4 * b + 4)]
        want = sim.train_step(x[4 * b : 4 * b + 4], t[4 * b : 4 * b + 4])
        assert np.mean(losses) == pytest.approx(want, rel=1e-5)
    got, ref = host.params(), sim.numpy_params()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)


INT8_CASES = [
    ("mlperf_kws_dscnn_int8", "last-layer"),
    ("mlperf_kws_dscnn_int8", "auto"),
    ("tflm_micro_speech_int8", "full"),
    ("tflm_hello_world_int8", "last-layer"),
    ("mlperf_vww_mobilenetv1_int8", "last-layer"),
    ("mlperf_tiny_resnet8_cifar10_float", "last-layer"),  # post-training quantized (CIFAR calibration)
    ("mlperf_tiny_resnet8_cifar10_float", "auto"),
]


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")
@pytest.mark.parametrize(("model", "strategy"), INT8_CASES)
def test_int8_frozen_layers(model: str, strategy: str, tmp_path: Path) -> None:
    """Mixed precision: the int8 frozen layers' integers are the simulator's exactly, so losses,
    parameters and inference agree as in float."""
    g = api.load(SHARED / "models" / f"{model}.tflite")
    opt = OptimizerConfig(lr=0.01)
    if not g.quantized:
        calib = np.load(SHARED / "datasets" / "cifar10_test_1000.npz")["x"][-200:]
        g = api.quantize(g, calib.transpose(0, 3, 1, 2).astype(np.float32))
        opt = OptimizerConfig(OptimizerKind.ADAM, lr=1e-5)
    plan = _strategy_plan(g, strategy, api.default_loss(g), opt)
    assert plan.frozen_precision == "int8"
    _parity(g, plan, tmp_path)
