"""Export into full-integer int8 ``.tflite`` files (mcutrain.host.export_int8): the written model is valid
for LiteRT, holds the trained layers requantized (each updated row within half a step of its trained
value), changes no other byte than those layers' integers and scales, and LiteRT runs it exactly as
mcutrain reads it back. How close its accuracy stays to the device's float-trained layers is measured in
benchmarks/int8_models.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_shared

from mcutrain import api
from mcutrain.cli import main
from mcutrain.core import ir
from mcutrain.emit.link_app import plan_summary
from mcutrain.host.export import ExportError
from mcutrain.host.export_int8 import export_tflite_int8
from mcutrain.train import precision
from mcutrain.train.memory import analyze
from mcutrain.train.mixed import MixedForward
from mcutrain.train.plan_file import write_plan
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors
from mcutrain.train.update_plan import LayerUpdate, OptimizerConfig, UpdatePlan

CASES = [
    ("mlperf_kws_dscnn_int8", "last-layer"),
    ("mlperf_kws_dscnn_int8", "two-layers"),  # a per-channel conv and the per-tensor classifier
    ("tflm_micro_speech_int8", "last-layer"),
    ("mlperf_vww_mobilenetv1_int8", "last-layer"),
]


def _plan(g: ir.Graph, kind: str) -> UpdatePlan:
    plan = api.plan(g, None, "last-layer", optimizer=OptimizerConfig(lr=0.01)).plan
    if kind == "two-layers":
        conv, last = g.trainable_nodes()[-2], g.trainable_nodes()[-1]
        plan = plan.with_layers(
            (LayerUpdate.weights(conv.name, 10), LayerUpdate.weights(last.name, g.shapes[last.name][0]))
        )
    return plan


def _litert(path: Path, g: ir.Graph, x: np.ndarray) -> np.ndarray:
    """LiteRT's reference kernels on float samples ``x`` (IR layout), quantized as the model's input;
    the dequantized outputs."""
    from kernels.tflite_builder import interpreter

    it = interpreter(path.read_bytes())
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (s, z), (so, zo) = inp["quantization"], out["quantization"]
    ys = []
    for xi in x:
        q = np.clip(np.round(xi / np.float32(s)) + z, -128, 127).astype(np.int8)
        nhwc = q.transpose(1, 2, 0) if q.ndim == 3 else q
        it.set_tensor(inp["index"], nhwc.reshape(inp["shape"]))
        it.invoke()
        ys.append(np.float32(so) * (it.get_tensor(out["index"]).reshape(-1).astype(np.float32) - zo))
    return np.stack(ys)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_int8_export_predicts_what_the_simulator_predicts(name: str, kind: str, tmp_path: Path) -> None:
    src = require_shared("models", f"{name}.tflite")
    g = api.load(src)
    plan = _plan(g, kind)
    sim = Simulator(g, plan)
    rng = np.random.default_rng(0)
    q = g.quant[g.inputs[0][0]]  # samples over the model's input range
    ints = rng.integers(-128, 128, (96, *g.inputs[0][1]))
    x = (np.float32(q.scale[0]) * (ints - q.zero_point[0])).astype(np.float32)
    k = g.shapes[g.outputs[0]][0]
    sim.fit(x[:32], np.eye(k, dtype=np.float32)[rng.integers(0, k, 32)])
    params = sim.numpy_params()
    out = tmp_path / "tuned.tflite"
    changed = export_tflite_int8(src, g, plan, params, out)
    assert changed > 0
    # only the trained layers' integers and scales differ from the source file
    old, new = np.frombuffer(src.read_bytes(), np.uint8), np.frombuffer(out.read_bytes(), np.uint8)
    assert old.size == new.size and 0 < int(np.sum(old != new)) <= 4 * changed + 64
    tuned = api.load(out)
    trained = {lu.name for lu in plan.trained}
    for key, v in g.qvalues.items():
        if key.rsplit(".", 1)[0] not in trained:
            assert np.array_equal(tuned.qvalues[key], v), key
    for layer in trained:  # each trained value within half a quantization step
        key = f"{layer}.weight"
        w, half = params[key], tuned.quant[key].scales(params[key].ndim) / 2
        assert np.all(np.abs(tuned.params[key] - w) <= half * (1 + 1e-5) + 1e-12), key
    # LiteRT runs the written integers exactly as mcutrain reads them back (frontend + int8 semantics)
    lite = _litert(out, g, x[32:])
    prec = precision.assign(
        tuned, UpdatePlan(tuned.name, tuned.fingerprint(), "-", (), frozen_precision="int8")
    )
    got = MixedForward(tuned, prec).run(torch.from_numpy(x[32:]), {})[tuned.outputs[0]].numpy()
    assert np.array_equal(lite, got)
    with torch.no_grad():  # and close to the simulator's float32 layers where nothing saturates
        want = sim.predict(x[32:]).numpy()
    assert float(np.median(np.abs(lite - want))) <= 2 * float(tuned.quant[tuned.outputs[0]].scale[0])


def test_cli_export_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = require_shared("models", "mlperf_kws_dscnn_int8.tflite")
    g = api.load(src)
    plan = _plan(g, "last-layer")
    write_plan(tmp_path / "plan.json", plan, analyze(g, plan), str(src))
    flat = np.concatenate([v for _, v in trainable_vectors(g, plan, dict(g.params))]) * 1.01
    npz = tmp_path / "pulled.npz"
    np.savez(npz, params=flat, model_hash=np.array(plan.model_hash), plan=np.array(plan_summary(plan)[:96]))
    out = tmp_path / "tuned.tflite"
    rc = main(
        ["export", str(src), "--params", str(npz), "--plan", str(tmp_path / "plan.json"), "--out", str(out)]
    )
    assert rc == 0, capsys.readouterr().err
    assert api.load(out).quantized
    w = api.load(out).params["dense.weight"]
    np.testing.assert_allclose(w, g.params["dense.weight"] * 1.01, atol=float(np.abs(w).max()) / 127)


def test_int8_export_refuses_another_model(tmp_path: Path) -> None:
    src = require_shared("models", "mlperf_kws_dscnn_int8.tflite")
    other = api.load(require_shared("models", "tflm_micro_speech_int8.tflite"))
    plan = _plan(other, "last-layer")
    with pytest.raises(ExportError, match="not the model the plan was made for"):
        export_tflite_int8(src, other, plan, dict(other.params), tmp_path / "x.tflite")
