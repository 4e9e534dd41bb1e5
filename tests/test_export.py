"""Export of pulled parameters into the source format: .tflite files checked with LiteRT's interpreter,
PyTorch state_dicts loaded into the source module, both against the simulator's forward pass with the
same parameters; and the errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter
from test_frontend_tflite import (
    CASES,
    HANDPOSTURE,
    REAL,
    RESNET8,
    TinyModel,
    _assert_close,
    _conv,
    _from_ir,
    _litert,
    _model_path,
    _softmax_input,
    _to_ir,
)
from torch import nn

from mcutrain import api
from mcutrain.cli import main
from mcutrain.core import ir, semantics
from mcutrain.emit.link_app import plan_summary
from mcutrain.frontends.torch import export_module, load_module
from mcutrain.host.export import ExportError, Pulled, export_tflite, merge_params
from mcutrain.host.export_torch import torch_state_dict
from mcutrain.train.memory import analyze
from mcutrain.train.plan_file import write_plan
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors
from mcutrain.train.update_plan import LayerUpdate, UpdatePlan
from mcutrain.zoo import toy

PLANS = ("full", "last-layer", "subset")


def _plan(graph: ir.Graph, kind: str) -> UpdatePlan:
    """A built-in strategy, or ``subset``: the last layer in full, half the output channels (with bias)
    of the layer before it, the first layer's bias only."""
    if kind != "subset":
        return api.plan(graph, None, strategy=kind).plan
    nodes = graph.trainable_nodes()
    half = max(1, graph.shapes[nodes[-2].name][0] // 2)
    layers = (
        LayerUpdate.bias_only(nodes[0].name),
        LayerUpdate.weights(nodes[-2].name, half),
        LayerUpdate.weights(nodes[-1].name, graph.shapes[nodes[-1].name][0]),
    )
    return api.plan(graph, None, strategy="full").plan.with_layers(layers, "subset")


def _pulled(graph: ir.Graph, plan: UpdatePlan, seed: int = 0) -> Pulled:
    """What ``mcutrain pull`` reads from a device that trained: every parameter perturbed, the plan's
    trainable values in export order."""
    rng = np.random.default_rng(seed)
    moved = {
        k: v + rng.normal(0, 0.1 * (v.std() + 0.01), v.shape).astype(np.float32)
        for k, v in graph.params.items()
    }
    flat = np.concatenate([v for _, v in trainable_vectors(graph, plan, moved)])
    return Pulled(flat, plan.model_hash, plan_summary(plan)[:96], 100)


MakeInput = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _check_tflite(
    path: Path, out: Path, plan_kind: str, make_input: MakeInput | None = None, seed: int = 0
) -> None:
    graph = api.load(path)
    plan = _plan(graph, plan_kind)
    params = merge_params(graph, plan, _pulled(graph, plan, seed))
    changed = export_tflite(path, graph, params, out)
    trained = sum(int((params[k] != graph.params[k]).sum()) for k in params)
    assert changed == trained > 0
    src, new = path.read_bytes(), out.read_bytes()
    assert len(src) == len(new)
    assert 0 < int((np.frombuffer(src, np.uint8) != np.frombuffer(new, np.uint8)).sum()) <= 4 * changed
    shape = tuple(Interpreter(model_path=str(path)).get_input_details()[0]["shape"])
    rng = np.random.default_rng(seed + 1)
    x = make_input(rng, shape) if make_input else rng.normal(0, 1, shape).astype(np.float32)
    env = semantics.run_graph(graph.replace(params=params), _to_ir(x), keep=True)  # the simulator's forward
    ref, it = _litert(out, x)
    _assert_close(_from_ir(env[graph.outputs[0]]), ref)
    before, it0 = _litert(path, x)
    logits_t = _softmax_input(out)
    if logits_t is not None:  # probabilities saturate: also compare the logits
        _assert_close(_from_ir(env[graph.node(graph.outputs[0]).inputs[0]]), it.get_tensor(logits_t))
        before, ref = it0.get_tensor(logits_t), it.get_tensor(logits_t)
    assert not np.allclose(before, ref, rtol=1e-3)  # the new weights are in effect


@pytest.mark.parametrize("plan_kind", PLANS)
@pytest.mark.parametrize("name", [RESNET8, HANDPOSTURE])
def test_real_tflite_export_matches_litert(name: str, plan_kind: str, tmp_path: Path) -> None:
    _check_tflite(_model_path(name), tmp_path / "new.tflite", plan_kind, REAL[name][0])


@pytest.mark.parametrize("case", ["depthwise", "transpose_conv", "conv"])
def test_tiny_tflite_layouts_export(case: str, tmp_path: Path) -> None:
    """Depthwise 1HWO and transposed-conv filters, written back through their own layouts."""
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(CASES[case]()[0])
    _check_tflite(path, tmp_path / "new.tflite", "full")


def _shared_weights_model(path: Path) -> None:
    m = TinyModel()
    x = m.tensor("input", (1, 6, 6, 3))
    y = _conv(m, x, 3, 3, (1, 6, 6, 3), act=1, name="conv_a")
    y = _conv(m, y, 3, 3, (1, 6, 6, 3), name="conv_b")
    names = [t.name.decode() for t in m.tensors]
    m.tensors[names.index("conv_b/w")].buffer = m.tensors[names.index("conv_a/w")].buffer
    path.write_bytes(m.build([x], [y]))


def test_tflite_shared_buffer(tmp_path: Path) -> None:
    path = tmp_path / "shared.tflite"
    _shared_weights_model(path)
    graph = api.load(path)
    np.testing.assert_array_equal(graph.params["conv_a.weight"], graph.params["conv_b.weight"])
    _check_tflite(path, tmp_path / "bias.tflite", "bias-only")  # the shared weights stay as they are
    plan = _plan(graph, "last-layer")
    with pytest.raises(ExportError, match=r"conv_a\.weight and conv_b\.weight share one tensor"):
        export_tflite(path, graph, merge_params(graph, plan, _pulled(graph, plan)), tmp_path / "x.tflite")


def test_tflite_values_without_float32_tensor(tmp_path: Path) -> None:
    """A float16 filter and a missing dense bias have nowhere to go; the other layers export."""
    path = tmp_path / "fp16.tflite"
    path.write_bytes(CASES["fp16_flatten_unflatten"]()[0])
    graph = api.load(path)
    full = _plan(graph, "full")
    for layer, key in (("conv", "conv.weight"), ("fc_1", "fc_1.bias")):
        plan = full.with_layers((LayerUpdate.weights(layer, graph.shapes[layer][0]),))
        with pytest.raises(ExportError, match=rf"{key}: \d+ trained values have no float32 tensor"):
            export_tflite(path, graph, merge_params(graph, plan, _pulled(graph, plan)), tmp_path / "x.tflite")
    plan = full.with_layers((LayerUpdate.weights("conv2", 3), LayerUpdate.weights("fc_1", 6, bias=False)))
    params = merge_params(graph, plan, _pulled(graph, plan))
    export_tflite(path, graph, params, tmp_path / "ok.tflite")
    x = np.random.default_rng(3).normal(0, 1, (1, 5, 5, 2)).astype(np.float32)
    ref, _ = _litert(tmp_path / "ok.tflite", x)
    _assert_close(_from_ir(semantics.forward(graph.replace(params=params), _to_ir(x))), ref)


# ---------------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------------


class AffineTail(nn.Module):
    """Conv+BN pairs (folded) and a batch norm after a residual add (kept as a channel affine)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1, bias=True), nn.BatchNorm2d(6))
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        y = self.bn(h + self.b(h))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _random_bn(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.3)
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))
    return module.eval()


@pytest.mark.parametrize(
    ("make", "shape", "plan_kind"),
    [
        (toy.resnet_block, (3, 16, 16), "full"),
        (toy.resnet_block, (3, 16, 16), "subset"),
        (AffineTail, (2, 6, 6), "full"),
    ],
)
def test_torch_state_dict_matches_simulator(make: type, shape: tuple[int, ...], plan_kind: str) -> None:
    module = _random_bn(make(), 5)
    x0 = torch.zeros((1, *shape))
    graph = load_module(module, x0, name="m")
    assert not any(isinstance(n.op, ir.BatchNorm) for n in graph.nodes)
    plan = _plan(graph, plan_kind)
    params = merge_params(graph, plan, _pulled(graph, plan))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    sd = torch_state_dict(export_module(module, x0), graph, params, module.state_dict())
    for k, v in before.items():  # batch-norm statistics and gamma behind folded layers stay as they were
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(sd[k], v), k
    assert any(not torch.equal(sd[k], before[k]) for k in before)
    module.load_state_dict(sd)
    x = torch.randn((8, *shape), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = module(x).numpy()
    sim = Simulator(graph.replace(params=params), plan, check_plan=False).predict(x).numpy()
    _assert_close(got, sim)


def test_torch_missing_bias_is_refused() -> None:
    module = nn.Sequential(nn.Flatten(), nn.Linear(8, 4, bias=False)).eval()
    x0 = torch.zeros((1, 8))
    graph = load_module(module, x0, name="m")
    plan = _plan(graph, "full")
    with pytest.raises(ExportError, match=r"1.bias: 4 trained values have no float32 tensor"):
        torch_state_dict(
            export_module(module, x0),
            graph,
            merge_params(graph, plan, _pulled(graph, plan)),
            module.state_dict(),
        )


# ---------------------------------------------------------------------------------------------------
# The verb and its errors
# ---------------------------------------------------------------------------------------------------


def _files(tmp_path: Path, model: str, pulled_plan: str = "full") -> tuple[ir.Graph, UpdatePlan, Path, Path]:
    graph = api.load(model)
    plan = _plan(graph, pulled_plan)
    pulled = _pulled(graph, plan)
    npz, plan_file = tmp_path / "params.npz", tmp_path / "plan.json"
    np.savez(npz, params=pulled.params, model_hash=np.array(pulled.model_hash), plan=np.array(pulled.plan))
    write_plan(plan_file, plan, analyze(graph, plan), model)
    return graph, plan, npz, plan_file


@pytest.mark.parametrize("source", ["mbv2_block", "resnet_block.pt2"])
def test_cli_export_state_dict(source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A built-in factory and a saved ``torch.export`` program (with random batch-norm statistics)."""
    if source.endswith(".pt2"):
        module = _random_bn(toy.resnet_block(), 9)
        torch.export.save(torch.export.export(module, (torch.zeros(1, 3, 16, 16),)), tmp_path / source)
        source = str(tmp_path / source)
    else:
        module = toy.mbv2_block()
    graph, plan, npz, plan_file = _files(tmp_path, source)
    out = tmp_path / "new.pt"
    assert main(["export", source, "--params", str(npz), "--plan", str(plan_file), "--out", str(out)]) == 0
    assert "state_dict values changed" in capsys.readouterr().out
    module.load_state_dict(torch.load(out))
    x = torch.randn((4, *graph.inputs[0][1]), generator=torch.Generator().manual_seed(1))
    params = merge_params(graph, plan, Pulled.load(npz))
    with torch.no_grad():
        _assert_close(module(x).numpy(), semantics.forward(graph.replace(params=params), x).numpy())


def _export_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["export", *args]) == 2
    return capsys.readouterr().err


def test_cli_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(_model_path(HANDPOSTURE))
    graph, _, npz, plan_file = _files(tmp_path, model, "last-layer")
    out = str(tmp_path / "new.tflite")
    ok = ["--params", str(npz), "--plan", str(plan_file)]
    assert main(["export", model, *ok, "--out", out]) == 0
    assert "float values in the file changed" in capsys.readouterr().out

    err = _export_error([str(Path(model).with_suffix(".h5")), *ok, "--out", out], capsys)
    assert "convert other formats (e.g. Keras .h5) to .tflite first" in err
    err = _export_error([model, *ok, "--out", str(tmp_path / "new.pt")], capsys)
    assert "a tflite source is written as .tflite" in err

    def with_npz(drop: str = "", **change: object) -> str:
        d = {k: v for k, v in np.load(npz).items() if k != drop}
        d.update(change)
        bad = tmp_path / "bad.npz"
        np.savez(bad, **d)
        return _export_error([model, "--params", str(bad), "--plan", str(plan_file), "--out", out], capsys)

    assert "pulled from a device running model 0123456789ab" in with_npz(
        model_hash=np.array("0123456789ab" * 4)
    )
    assert "the device runs plan 'full sgd" in with_npz(plan=np.array(plan_summary(_plan(graph, "full"))))
    assert "3 parameter values given, the plan trains" in with_npz(params=np.zeros(3, np.float32))
    assert "NaN or Inf" in with_npz(params=np.full(np.load(npz)["params"].size, np.nan, np.float32))
    assert "no array 'params'" in with_npz(drop="params")

    mlp = api.load("mlp")
    other = api.plan(mlp, None, strategy="full").plan
    write_plan(tmp_path / "other.json", other, analyze(mlp, other), "mlp")
    err = _export_error(
        [model, "--params", str(npz), "--plan", str(tmp_path / "other.json"), "--out", out], capsys
    )
    assert "plan was made for model mlp" in err


def test_cli_export_graph_json(tmp_path: Path) -> None:
    src = tmp_path / "mlp.json"
    src.write_text(api.load("mlp").to_json())
    graph, plan, npz, plan_file = _files(tmp_path, str(src), "subset")
    out = tmp_path / "new.json"
    assert main(["export", str(src), "--params", str(npz), "--plan", str(plan_file), "--out", str(out)]) == 0
    params = merge_params(graph, plan, Pulled.load(npz))
    got = ir.Graph.from_json(out.read_text()).params
    assert got.keys() == params.keys()
    for k in params:
        np.testing.assert_array_equal(got[k], params[k])
    assert any(not np.array_equal(got[k], graph.params[k]) for k in params)
