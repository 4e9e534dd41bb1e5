"""Post-training quantization of a float model's frozen layers (mcutrain.train.ptq, ``plan --frozen-precision
int8 --calib``): TFLite's full-integer scheme from calibration data, and what the quantized model does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from graphs import residual, small_cnn

from mcutrain import api
from mcutrain.cli import main
from mcutrain.core import ir, semantics
from mcutrain.train import precision
from mcutrain.train.memory import analyze
from mcutrain.train.mixed import MixedForward
from mcutrain.train.ptq import SOFTMAX_QUANT, activation_quant, quantize_graph
from mcutrain.train.update_plan import PlanError, UpdatePlan


def _calib(g: ir.Graph, n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *g.inputs[0][1])).astype(np.float32)


def test_activation_quant_covers_the_range_and_zero() -> None:
    """Real 0 is an integer (the zero point), and the range widened to include it fits the 256 levels."""
    for lo, hi in ((-1.0, 3.0), (0.5, 2.0), (-4.0, -1.0), (0.0, 0.0)):
        q = activation_quant(lo, hi)
        s, z = q.scale[0], q.zero_point[0]
        assert -128 <= z <= 127 and s > 0
        assert s * (-128 - z) <= min(lo, 0.0) + s and s * (127 - z) >= max(hi, 0.0) - s  # the range fits
        wide = max(hi, 0.0) - min(lo, 0.0)
        assert wide == 0 or float(np.float32(wide / 255.0)) == s  # 256 levels over the widened range


def test_quantized_graph_follows_tflite_rules() -> None:
    g = residual()
    q = quantize_graph(g, _calib(g))
    for n in q.nodes:
        if isinstance(n.op, (ir.Conv2d, ir.Linear)):
            w, wq = q.qvalues[n.param_key("weight")], q.quant[n.param_key("weight")]
            # symmetric per output channel, each channel's largest weight at +-127
            assert wq.zero_point == (0,) * w.shape[0]
            assert np.all(np.abs(w.reshape(w.shape[0], -1)).max(axis=1) == 127)
            bq = q.quant[n.param_key("bias")]
            sx = np.float32(q.quant[n.inputs[0]].scale[0])
            assert bq.scale == tuple(float(sx * np.float32(s)) for s in wq.scale) and bq.dtype == "int32"
            real = w.astype(np.float32) * wq.scales(w.ndim)
            np.testing.assert_allclose(real, g.params[n.param_key("weight")], atol=max(wq.scale) / 2 + 1e-7)
        if isinstance(n.op, ir.Activation) and n.op.fn is ir.ActFn.RELU:
            assert q.quant[n.name] == q.quant[n.inputs[0]]  # fused into its producer, as TFLite does
        if isinstance(n.op, (ir.Reshape, ir.MaxPool2d, ir.AvgPool2d, ir.Pad)):
            assert q.quant[n.name] == q.quant[n.inputs[0]]
        if isinstance(n.op, ir.Softmax):
            assert q.quant[n.name] == SOFTMAX_QUANT
    assert q.params.keys() == g.params.keys()  # float values kept: updated layers start from them
    assert q.fingerprint() != g.fingerprint()


@pytest.mark.parametrize("make", [small_cnn, residual])
def test_int8_frozen_model_stays_close_to_the_float_model(make) -> None:  # type: ignore[no-untyped-def]
    """The whole graph in int8 (nothing trained) predicts what the float model predicts, to within the
    quantization's error: the same class on nearly every sample, outputs within a few output steps."""
    g = make()
    q = quantize_graph(g, _calib(g, 256, seed=1))
    prec = precision.assign(q, UpdatePlan(q.name, q.fingerprint(), "none", (), frozen_precision="int8"))
    assert sum(p == "int8" for p in prec.nodes.values()) >= len(q.nodes) - 1
    x = torch.from_numpy(_calib(g, 200, seed=2))
    got = MixedForward(q, prec).run(x, {})[g.outputs[0]]
    want = semantics.forward(g, x)
    agree = float((got.argmax(1) == want.argmax(1)).float().mean())
    assert agree >= 0.9, agree
    assert float((got - want).abs().mean()) < 0.05 * float(want.abs().max())


def test_refusals() -> None:
    g = small_cnn()
    q = quantize_graph(g, _calib(g))
    with pytest.raises(PlanError, match="quantized already"):
        quantize_graph(q, _calib(g))
    bad = _calib(g)
    bad[3, 0] = np.nan
    with pytest.raises(PlanError, match="finite calibration"):
        quantize_graph(g, bad)
    with pytest.raises(PlanError, match="finite calibration"):
        quantize_graph(g, bad[:0])


def test_plan_with_ptq_records_it_and_emit_redoes_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``plan --frozen-precision int8 --calib`` writes the calibration into the plan file; emit quantizes
    the float model the same way again (the memory it re-derives must match the plan's)."""
    g = small_cnn()
    model = tmp_path / "cnn.json"
    model.write_text(json.dumps(g.to_dict()))
    calib = tmp_path / "calib.npz"
    x = _calib(g, 48)
    np.savez(calib, x=x, y=np.arange(48) % g.shapes[g.outputs[0]][0])
    out = tmp_path / "p.json"
    rc = main(
        ["plan", str(model), "--strategy", "last-layer", "--frozen-precision", "int8", "--calib", str(calib),
         "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "int8" in text
    d = json.loads(out.read_text())
    assert d["plan"]["frozen_precision"] == "int8" and d["model"]["ptq"]["calib"] == str(calib)
    assert main(["emit", str(out), "--out", str(tmp_path / "gen")]) == 0
    assert "int8_t" in (tmp_path / "gen" / "mt_params.c").read_text()
    # int8 activations take less RAM than float32 ones; on a model this small the DSP conv2d's scratch can
    # outweigh that, and a budget of the float plan's peak then gets the plan without it
    fp_peak = api.plan(g, None, "last-layer").memory.peak_ram_bytes
    qg = api.quantize(g, x)
    lean = analyze(qg, replace(UpdatePlan.from_dict(d["plan"]), int8_scratch=False))
    assert lean.peak_ram_bytes < fp_peak
    res = api.plan(qg, fp_peak, "last-layer")
    assert res.memory.peak_ram_bytes <= fp_peak and res.plan.int8_scratch == (
        d["memory"]["peak_ram_bytes"] <= fp_peak
    )
