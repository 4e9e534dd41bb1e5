"""Mixed precision (mcutrain.train.precision, train.mixed, core.int8_tables): which nodes run int8, the
training graph's conversions and int8 buffers, the memory report's int8 bytes and flash, and the
simulator's int8 forward against LiteRT on whole models.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_shared
from graphs import small_cnn

from mcutrain import api
from mcutrain.core import ir
from mcutrain.core.quant import Quant
from mcutrain.emit.model_c import emit
from mcutrain.train import precision
from mcutrain.train.derive import Action, derive
from mcutrain.train.memory import analyze
from mcutrain.train.mixed import MixedForward
from mcutrain.train.plan_file import check_memory, read_plan, write_plan
from mcutrain.train.update_plan import LayerUpdate, PlanError, UpdatePlan

INT8_MODELS = [
    "tflm_hello_world_int8",
    "tflm_micro_speech_int8",
    "mlperf_kws_dscnn_int8",
    "mlperf_vww_mobilenetv1_int8",
]


def _load(name: str) -> ir.Graph:
    return api.load(require_shared("models", f"{name}.tflite"))


def _plan(g: ir.Graph, layers: tuple[LayerUpdate, ...], prec: str = "int8") -> UpdatePlan:
    return UpdatePlan(g.name, g.fingerprint(), "test", layers, frozen_precision=prec)


def _smooth_int8(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A smooth random field over the sample's axes (closer to spectrograms and images than noise)."""
    v = rng.standard_normal(shape)
    for axis in range(1, len(shape)):
        v = np.cumsum(v, axis=axis)
    v = (v - v.min()) / max(float(v.max() - v.min()), 1e-9)
    return np.round(v * 255 - 128).astype(np.int8)


@pytest.mark.parametrize("name", INT8_MODELS)
def test_whole_int8_model_equals_litert(name: str) -> None:
    """Imported by the frontend and run by the simulator's int8 path with nothing trained, every real
    int8 model gives LiteRT's reference output, bit for bit (input integers in, output integers out)."""
    from kernels.tflite_builder import interpreter

    path = require_shared("models", f"{name}.tflite")
    g = api.load(path)
    prec = precision.assign(g, _plan(g, ()))
    assert prec.any_int8
    mixed = MixedForward(g, prec)
    it = interpreter(path.read_bytes())
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (in_name, in_shape), qin = g.inputs[0], g.quant[g.inputs[0][0]]
    rng = np.random.default_rng(3)
    for k in range(4):
        nhwc = tuple(int(v) for v in inp["shape"])
        q = rng.integers(-128, 128, nhwc, dtype=np.int8) if k % 2 else _smooth_int8(nhwc, rng)
        it.set_tensor(inp["index"], q)
        it.invoke()
        want = it.get_tensor(out["index"]).reshape(-1)
        chw = q.transpose(0, 3, 1, 2) if q.ndim == 4 else q  # the IR is channels first
        x = torch.from_numpy(mixed.dequantize(chw.reshape(1, *in_shape), in_name, torch.float32).numpy())
        got = mixed.run(x, {})[g.outputs[0]].numpy().reshape(-1)
        want_f = mixed.dequantize(want, g.outputs[0], torch.float32).numpy()
        assert g.quant[g.outputs[0]] == Quant.per_tensor(*out["quantization"])
        assert qin == Quant.per_tensor(*inp["quantization"])
        assert np.array_equal(got, want_f), f"{name} sample {k}: {got} != {want_f}"


def test_precision_follows_the_plan() -> None:
    """int8 runs the frozen prefix; from the first updated layer on everything is float32 (frozen convs
    too); a float tensor is quantized only for a layer with weights; ``fp32`` turns int8 off."""
    g = _load("mlperf_kws_dscnn_int8")
    convs = [n.name for n in g.trainable_nodes()]
    mid = convs[5]
    prec = precision.assign(g, _plan(g, (LayerUpdate.weights(mid, 8),)))
    after = False
    for n in g.nodes:
        after = after or n.name == mid
        assert prec.nodes[n.name] == ("fp32" if after else "int8"), n.name
    prec = precision.assign(g, _plan(g, (LayerUpdate.weights("dense", 12),)))
    assert [n for n, p in prec.nodes.items() if p == "fp32"] == ["dense", "softmax"]
    assert not precision.assign(g, _plan(g, (LayerUpdate.bias_only("dense"),), "fp32")).any_int8
    # micro_speech: its first op is a reshape of the float input (a float view), so the ReLU after the
    # updated conv has float input and stays float
    ms = _load("tflm_micro_speech_int8")
    full = api.plan(ms, None, "full").plan
    assert not precision.assign(ms, full).any_int8


def test_training_graph_converts_between_precisions() -> None:
    g = _load("mlperf_kws_dscnn_int8")
    mid = g.trainable_nodes()[5]
    tg = derive(g, _plan(g, (LayerUpdate.weights(mid.name, 8), LayerUpdate.bias_only("dense"))))
    conv = [s for s in tg.steps if s.action in (Action.QUANTIZE, Action.DEQUANTIZE)]
    # the float input quantized once for the first conv; the mid layer's int8 input dequantized for its
    # forward, and again for its weight gradient: the backward keeps it saved as int8
    t = mid.inputs[0]
    assert [(s.action, s.reads[0], s.writes[0]) for s in conv] == [
        (Action.QUANTIZE, g.inputs[0][0], g.inputs[0][0] + "__s8"),
        (Action.DEQUANTIZE, t, t + "__f32"),
        (Action.DEQUANTIZE, t, t + "__f32bw"),
    ]
    fw = next(s for s in tg.steps if s.action is Action.FORWARD and s.node == mid.name)
    wg = next(s for s in tg.steps if s.action is Action.WGRAD and s.node == mid.name)
    assert fw.reads == (t + "__f32",) and wg.reads[1] == t + "__f32bw"
    assert t in tg.saved and t + "__f32" not in tg.saved and tg.buffers[t].dtype == "s8"
    assert tg.steps.index(conv[2]) == tg.steps.index(wg) - 1  # right before it: a short-lived float copy
    for b in tg.buffers.values():
        elems = int(np.prod(b.shape))
        if b.dtype == "s8":
            assert b.nbytes == elems and tg.precision is not None
        elif b.kind.value != "mask":
            assert b.nbytes == 4 * elems, b.name
    assert tg.infer_out == g.outputs[0]  # the softmax after the updated classifier runs float
    frozen = derive(g, _plan(g, (LayerUpdate.bias_only(mid.name),)))
    assert frozen.infer_out == g.outputs[0]
    pre = derive(g, _plan(g, (LayerUpdate.bias_only(g.trainable_nodes()[0].name),)))
    assert pre.precision is not None and not pre.precision.any_int8  # all downstream of the first conv


def test_reshape_must_keep_the_quantization() -> None:
    g = _load("mlperf_kws_dscnn_int8")
    r = next(n for n in g.nodes if isinstance(n.op, ir.Reshape))
    quant = dict(g.quant)
    quant[r.name] = Quant.per_tensor(0.5, 0)
    bad = g.replace(quant=quant)
    with pytest.raises(PlanError, match="must keep its scale and zero point"):
        precision.assign(bad, _plan(bad, (LayerUpdate.bias_only("dense"),)))


def test_float_model_needs_quantization_for_int8() -> None:
    g = small_cnn()
    with pytest.raises(PlanError, match="--calib"):
        precision.assign(g, _plan(g, (LayerUpdate.bias_only(g.trainable_nodes()[-1].name),)))


def _const_bytes(params_c: str) -> dict[str, int]:
    size = {"float": 4, "int8_t": 1, "int32_t": 4, "uint64_t": 8}
    return {
        m[2]: size[m[1]] * int(m[3])
        for m in re.finditer(r"^const (\w+) (\w+)\[(\d+)\]", params_c, flags=re.M)
    }


@pytest.mark.parametrize("strategy", ["last-layer", "mid"])
def test_flash_and_ram_of_an_int8_plan(strategy: str, tmp_path: Path) -> None:
    """The memory report's flash is the generated parameter tables byte for byte (trainable initial
    values aside), its int8 bytes are the int8 buffers live at the peak, and both are far below the same
    plan run fully in float32."""
    g = _load("mlperf_kws_dscnn_int8")
    layers = (LayerUpdate.weights("dense", 12),)
    if strategy == "mid":
        layers = (LayerUpdate.weights(g.trainable_nodes()[5].name, 16), *layers)
    plan = _plan(g, layers)
    mem = analyze(g, plan)
    em = emit(g, plan, tmp_path)
    tables = _const_bytes((tmp_path / "mt_params.c").read_text())
    init = sum(v for k, v in tables.items() if k.endswith("_init"))
    assert mem.flash_bytes == sum(tables.values()) - init
    assert em.memory.arena_bytes == mem.arena_bytes
    tr = mem.schedule.train
    s8 = sum(tr.storage_bytes[r] for r in tr.live_at_peak if mem.train_graph.buffers[r].dtype == "s8")
    assert sum(mem.int8_bytes.values()) == s8 > 0  # mid: the updated layer's input, saved as int8
    fp = analyze(g, replace(plan, frozen_precision="fp32"))
    if strategy == "last-layer":
        assert mem.flash_bytes < fp.flash_bytes / 3 and mem.peak_ram_bytes < fp.peak_ram_bytes / 2
    else:  # the layers after the updated one are float32 (their weights too)
        assert mem.flash_bytes < fp.flash_bytes and mem.peak_ram_bytes < fp.peak_ram_bytes
    assert {lm.name: lm.precision for lm in mem.layers}["dense"] == "fp32"


def test_plan_file_keeps_the_precision(tmp_path: Path) -> None:
    g = _load("mlperf_kws_dscnn_int8")
    res = api.plan(g, 64 * 1024, "last-layer")
    assert res.plan.frozen_precision == "int8"
    path = tmp_path / "p.json"
    write_plan(path, res.plan, res.memory, str(require_shared("models", "mlperf_kws_dscnn_int8.tflite")))
    pf = read_plan(path)
    assert pf.plan == res.plan
    check_memory(pf, analyze(g, pf.plan))  # the same int8 memory re-derived
    fp = replace(res.plan, frozen_precision="fp32")
    assert UpdatePlan.from_dict(fp.to_dict()) == fp
