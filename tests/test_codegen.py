"""End-to-end parity: the generated C (host build, -ffp-contract=off) against the simulator.

For each model and plan, 20 training steps on the same samples give the same losses and parameters to
1e-5 relative; the arena in the C source equals the plan's bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from graphs import residual, small_cnn, tiny_mlp

from mcutrain import api
from mcutrain.codegen import emit
from mcutrain.hostbuild import HostModel, build_host
from mcutrain.plan import LayerUpdate, OptimizerConfig, OptimizerKind, UpdatePlan
from mcutrain.sim import Simulator

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STEPS = 20


def _samples(g, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    scale = 255.0 if g.name.startswith("mlperf") else 1.0
    x = (rng.random((n, *g.inputs[0][1])) * scale if scale > 1 else rng.standard_normal((n, *g.inputs[0][1])))
    k = g.shapes[g.outputs[0]][0]
    return x.astype(np.float32), np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]


def _parity(g, plan: UpdatePlan, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    em = emit(g, plan, out)
    src = (out / "mt_model.c").read_text()
    assert f"#define MT_ARENA_BYTES {em.memory.arena_bytes}u" in (out / "mt_model.h").read_text()
    assert re.search(rf"_Static_assert\(sizeof\(mt_arena\) == {em.memory.arena_bytes}u", src)
    host = HostModel(build_host(out), g, plan)
    sim = Simulator(g, plan)
    x, t = _samples(g, STEPS)
    for i in range(STEPS):
        rc, loss_c = host.train_step(x[i], t[i])
        loss_s = sim.train_step(x[i : i + 1], t[i : i + 1])
        assert rc == 0
        assert loss_c == pytest.approx(loss_s, rel=1e-5, abs=1e-6), f"step {i}"
    got, want = host.params(), sim.numpy_params()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5 * float(np.abs(want[k]).max() + 1e-12),
                                   err_msg=k)
    # inference of the trained model agrees too
    np.testing.assert_allclose(host.infer(x[0]), sim.predict(x[:1])[0].numpy(), rtol=1e-5, atol=1e-6)


MODELS = {"tiny_mlp": tiny_mlp, "small_cnn": small_cnn, "residual": residual}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("strategy", ["full", "bias-only", "last-layer", "subset", "auto"])
def test_generated_c_matches_simulator(model: str, strategy: str, tmp_path: Path) -> None:
    g = MODELS[model]()
    if strategy == "subset":
        nodes = g.trainable_nodes()
        layers = [LayerUpdate.weights(n.name, max(1, g.shapes[n.name][0] // 2), bias=i % 2 == 0)
                  for i, n in enumerate(nodes)]
        plan = UpdatePlan(g.name, g.fingerprint(), "subset", tuple(layers))
    elif strategy == "auto":
        full = api.plan(g, None, "full").memory.peak_ram_bytes
        last = api.plan(g, None, "last-layer").memory.peak_ram_bytes
        plan = api.plan(g, (full + last) // 2, "auto", score="proxy").plan
    else:
        plan = api.plan(g, None, strategy).plan
    _parity(g, plan, tmp_path)


@pytest.mark.parametrize("kind", [OptimizerKind.MOMENTUM, OptimizerKind.ADAM])
def test_optimizers_and_cosine_schedule(kind: OptimizerKind, tmp_path: Path) -> None:
    g = small_cnn()
    cfg = OptimizerConfig(kind, lr=0.01, weight_decay=1e-3, schedule="cosine", total_steps=15)
    plan = api.plan(g, None, "full", optimizer=cfg).plan
    _parity(g, plan, tmp_path)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")
@pytest.mark.parametrize("strategy", ["last-layer", "subset"])
def test_real_handposture_model(strategy: str, tmp_path: Path) -> None:
    g = api.load(SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite")
    if strategy == "subset":
        plan = UpdatePlan(g.name, g.fingerprint(), "subset", tuple(
            LayerUpdate.weights(n.name, max(1, g.shapes[n.name][0] // 4)) for n in g.trainable_nodes()))
    else:
        plan = api.plan(g, None, strategy).plan
    _parity(g, plan, tmp_path)


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
    plan = UpdatePlan(g.name, g.fingerprint(), "subset", tuple(
        LayerUpdate.weights(n.name, max(1, g.shapes[n.name][0] // 2)) for n in nodes),
        optimizer=OptimizerConfig(OptimizerKind.ADAM, lr=1e-3))
    out = tmp_path / "gen"
    emit(g, plan, out)
    exe = build_host(out, "mt_train_host_asan")
    x, t = _samples(g, 5)
    _write_samples(tmp_path / "s.bin", x, t)
    r = subprocess.run([str(exe), str(tmp_path / "s.bin"), str(tmp_path / "p.bin")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    losses = [float(line.split()[1]) for line in r.stdout.splitlines()]
    sim = Simulator(g, plan)
    want = [sim.train_step(x[i : i + 1], t[i : i + 1]) for i in range(5)]
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    flat = np.fromfile(tmp_path / "p.bin", dtype="<f4")
    host_flat = np.concatenate([
        np.concatenate([sim.numpy_params()[f"{lu.name}.weight"][: lu.channels].reshape(-1),
                        sim.numpy_params()[f"{lu.name}.bias"]]) for lu in plan.layers])
    np.testing.assert_allclose(flat, host_flat, rtol=1e-5, atol=1e-7)
