"""PyTorch frontend: every supported op, the toy models, .pt2 and factory loading, and the errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcutrain import zoo
from mcutrain.core import ir, semantics
from mcutrain.frontends import FrontendError, load_model
from mcutrain.frontends.torch import load_exported, load_factory, load_module
from mcutrain.zoo import toy


class Fn(nn.Module):
    """A module around a function of the input (weights come from ``layers``)."""

    def __init__(self, fn: Callable[..., torch.Tensor], *layers: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, *self.layers)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial batch-norm statistics and affine parameters, so that folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))
    return model.eval()


def assert_matches(graph: ir.Graph, model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> None:
    x = torch.randn((3, *shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    out = semantics.forward(graph, x).numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-6 * float(np.abs(ref).max()))


def kinds(graph: ir.Graph) -> set[str]:
    return {n.op.kind for n in graph.nodes}


def example(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------------------------------
# single ops: (module, per-sample input shape, op kinds that must appear)
# ---------------------------------------------------------------------------------------------------

S = (4, 8, 8)
OP_CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], set[str]]] = {
    "conv": (lambda: nn.Conv2d(4, 6, 3, padding=1), S, {"conv2d"}),
    "conv_stride_dilation_nobias": (lambda: nn.Conv2d(4, 6, 3, 2, 2, dilation=2, bias=False), S, {"conv2d"}),
    "conv_same_asym": (lambda: nn.Conv2d(4, 6, (3, 4), padding="same"), S, {"conv2d"}),
    "conv_groups": (lambda: nn.Conv2d(4, 6, 3, groups=2), S, {"conv2d"}),
    "conv_depthwise": (lambda: nn.Conv2d(4, 4, 3, 2, 1, groups=4), S, {"conv2d"}),
    "conv_bn_relu_inplace": (
        lambda: nn.Sequential(nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(inplace=True)),
        S,
        {"conv2d", "activation"},
    ),
    "conv_plus_const_bias": (lambda: Fn(lambda x, c: c(x) + 0.5, nn.Conv2d(4, 6, 1)), S, {"conv2d"}),
    "bn_alone": (lambda: nn.BatchNorm2d(4), S, {"channel_affine"}),
    "linear": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(256, 10)), S, {"linear"}),
    "linear_nobias_bn1d": (
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(256, 10, bias=False), nn.BatchNorm1d(10)),
        S,
        {"linear"},
    ),
    "matmul_plus_bias": (lambda: MatmulBias(), (12,), {"linear"}),
    "relu": (lambda: nn.ReLU(), S, {"activation"}),
    "relu6": (lambda: nn.ReLU6(), S, {"activation"}),
    "hardtanh06": (lambda: nn.Hardtanh(0.0, 6.0), S, {"activation"}),
    "clamp06": (lambda: Fn(lambda x: x.clamp(0, 6)), S, {"activation"}),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), S, {"activation"}),
    "sigmoid": (lambda: nn.Sigmoid(), S, {"activation"}),
    "tanh": (lambda: nn.Tanh(), S, {"activation"}),
    "max_pool": (lambda: nn.MaxPool2d(3, 2, 1), S, {"max_pool2d"}),
    "max_pool_ceil": (lambda: nn.MaxPool2d(2, 2, ceil_mode=True), (4, 7, 9), {"max_pool2d"}),
    "max_pool_indices": (lambda: Fn(lambda x: F.max_pool2d(x, 2, return_indices=True)[0]), S, {"max_pool2d"}),
    "avg_pool_pad": (lambda: nn.AvgPool2d(3, 2, 1), S, {"avg_pool2d"}),
    "avg_pool_exclude_pad": (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), S, {"avg_pool2d"}),
    "adaptive_avg_1": (lambda: nn.AdaptiveAvgPool2d(1), S, {"global_avg_pool", "reshape"}),
    "adaptive_avg_2": (lambda: nn.AdaptiveAvgPool2d(2), S, {"avg_pool2d"}),
    "adaptive_max_1": (lambda: nn.AdaptiveMaxPool2d(1), S, {"global_max_pool", "reshape"}),
    "mean_hw": (lambda: Fn(lambda x: x.mean((-1, -2))), S, {"global_avg_pool"}),
    "mean_hw_keepdim": (
        lambda: Fn(lambda x: x.mean((2, 3), keepdim=True)),
        S,
        {"global_avg_pool", "reshape"},
    ),
    "amax_hw": (lambda: Fn(lambda x: x.amax((2, 3))), S, {"global_max_pool"}),
    "flatten_view_reshape": (
        lambda: Fn(lambda x: x.flatten(1).view(-1, 4, 64).reshape(-1, 256).unsqueeze(-1).squeeze(-1)),
        S,
        {"reshape"},
    ),
    "add": (lambda: Fn(lambda x: x + torch.relu(x)), S, {"add", "activation"}),
    "cat": (lambda: Fn(lambda x: torch.cat([x, torch.sigmoid(x), x], dim=1)), S, {"concat"}),
    "upsample_nearest": (lambda: nn.Upsample(scale_factor=2), S, {"upsample"}),
    "upsample_nearest_size": (lambda: Fn(lambda x: F.interpolate(x, size=(16, 24))), S, {"upsample"}),
    "upsample_nearest_exact": (lambda: nn.Upsample(scale_factor=3, mode="nearest-exact"), S, {"upsample"}),
    "upsample_bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), S, {"upsample"}),
    "upsample_bilinear_ac": (
        lambda: nn.Upsample(scale_factor=(2, 3), mode="bilinear", align_corners=True),
        S,
        {"upsample"},
    ),
    "pad": (lambda: Fn(lambda x: F.pad(x, (1, 2, 0, 3))), S, {"pad"}),
    "pad_value": (lambda: nn.ConstantPad2d((2, 0, 1, 1), 1.5), S, {"pad"}),
    "softmax": (lambda: Fn(lambda x: torch.softmax(x.flatten(1), dim=-1)), S, {"softmax"}),
    "identities": (
        lambda: nn.Sequential(
            nn.Dropout(0.3), nn.Dropout2d(0.3), Fn(lambda x: x.clone().contiguous().detach())
        ),
        S,
        set(),
    ),
}


class MatmulBias(nn.Module):
    """``x @ W + b`` with raw parameters: the ``mm`` + ``add`` pattern."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(12, 5))
        self.register_buffer("b", torch.randn(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.w + self.b)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_single_op_matches_module(case: str) -> None:
    make, shape, expected = OP_CASES[case]
    torch.manual_seed(0)
    model = randomize_bn(make())
    graph = load_module(model, example(shape), name=case)
    assert expected <= kinds(graph), kinds(graph)
    assert "batch_norm" not in kinds(graph)
    assert_matches(graph, model, shape)


def test_bias_adds_fold_into_the_layer() -> None:
    graph = load_module(toy_with(lambda x, c: c(x) + 0.5), example(S))
    assert [n.op.kind for n in graph.nodes] == ["conv2d"]
    graph = load_module(MatmulBias(), example((12,)))
    assert [n.op.kind for n in graph.nodes] == ["linear", "activation"]


def toy_with(fn: Callable[..., torch.Tensor]) -> nn.Module:
    torch.manual_seed(0)
    return Fn(fn, nn.Conv2d(4, 6, 1)).eval()


# ---------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------


class TransposedNet(nn.Module):
    """Transposed convolutions with output_padding, stride 2, groups and dilation, each followed by BN."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.bn1 = nn.BatchNorm2d(6)
        self.up2 = nn.ConvTranspose2d(
            6, 3, (2, 3), stride=(2, 1), padding=(0, 2), dilation=(1, 2), bias=False
        )
        self.bn2 = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.up2(torch.relu(self.bn1(self.up1(x)))))


@pytest.mark.parametrize("factory", ["mlp", "resnet_block", "mbv2_block", "tiny_unet"])
def test_toy_models_match(factory: str) -> None:
    model = randomize_bn(getattr(toy, factory)(), seed=3)
    shape = model.example_input_shape
    unfolded = load_module(model, example(shape), fold_bn=False)
    folded = load_module(model, example(shape))
    assert "batch_norm" not in kinds(folded)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(unfolded.nodes) - len(folded.nodes) == n_bn
    assert_matches(unfolded, model, shape)
    assert_matches(folded, model, shape, seed=1)


def test_toy_factories_are_deterministic() -> None:
    state = torch.random.get_rng_state()
    a, b = toy.resnet_block().state_dict(), toy.resnet_block().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched


def test_conv_transpose_model_matches() -> None:
    torch.manual_seed(0)
    model = randomize_bn(TransposedNet())
    graph = load_module(model, example((4, 5, 6)))
    assert [n.op.kind for n in graph.nodes] == ["conv_transpose2d", "activation", "conv_transpose2d"]
    t, b, l, r = graph.nodes[0].op.padding
    assert (t, b, l, r) == (1, 0, 1, 0)  # output_padding=1 -> crop one pixel less at the bottom/right
    assert graph.shapes[graph.nodes[0].name] == (6, 10, 12)
    assert_matches(graph, model, (4, 5, 6))


def test_module_training_flag_is_restored() -> None:
    model = toy.mlp().train()
    load_module(model, example((1, 8, 8)))
    assert model.training


# ---------------------------------------------------------------------------------------------------
# files, factories, serialization
# ---------------------------------------------------------------------------------------------------


def test_pt2_round_trip(tmp_path: Path) -> None:
    model = randomize_bn(toy.resnet_block())
    x = example(model.example_input_shape)
    path = tmp_path / "resnet.pt2"
    torch.export.save(torch.export.export(model, (x,)), path)
    graph = load_exported(path)
    assert graph.name == "resnet"
    assert_matches(graph, model, model.example_input_shape)
    assert graph.fingerprint() == load_module(model, x, name="resnet").fingerprint()
    assert load_model(path).fingerprint() == graph.fingerprint()


def test_load_factory_and_json_round_trip() -> None:
    graph = load_factory("mcutrain.zoo.toy:mlp")
    assert graph.name == "mlp" and graph.inputs[0][1] == (1, 8, 8)
    assert_matches(graph, toy.mlp(), (1, 8, 8))
    assert load_model("mcutrain.zoo.toy:mlp").fingerprint() == graph.fingerprint()
    again = ir.Graph.from_json(graph.to_json())
    assert again.fingerprint() == graph.fingerprint()


def test_factory_input_shape_argument_wins() -> None:
    graph = load_factory(f"{__name__}:no_shape_factory", input_shape=(3, 6, 6))
    assert graph.inputs[0][1] == (3, 6, 6)


def no_shape_factory() -> nn.Module:
    return nn.Conv2d(3, 2, 3)


def test_zoo_registry() -> None:
    assert zoo.resolve("tiny_unet") == "mcutrain.zoo.toy:tiny_unet"
    assert zoo.resolve("depth") == "mcutrain.zoo.depth:updepthnet_pretrained"
    assert zoo.resolve("depth_init") == "mcutrain.zoo.depth:updepthnet"
    assert zoo.resolve("pkg.mod:f") == "pkg.mod:f"
    with pytest.raises(FrontendError, match="mlp"):
        zoo.resolve("no-such-model")
    code = "import sys, mcutrain.zoo; assert not {'mcutrain.zoo.depth', 'torch'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------


def _raises(model: nn.Module, shape: tuple[int, ...], *patterns: str) -> str:
    with pytest.raises(FrontendError) as info:
        load_module(model.eval(), example(shape))
    msg = str(info.value)
    for p in patterns:
        assert p in msg, msg
    return msg


def test_unsupported_activation_names_op_node_and_alternative() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3), nn.GELU())
    _raises(model, S, "aten.gelu", "FX node 'gelu'", "module '1'", "relu6")


def test_multiply_by_constant_is_rejected() -> None:
    _raises(Fn(lambda x: x * 2), S, "aten.mul", "BatchNorm")


def test_other_unsupported_ops() -> None:
    _raises(Fn(lambda x: x.mean(1)), S, "aten.mean", "global average pooling")
    _raises(Fn(lambda x: torch.relu(x) + 1.0), S, "aten.add", "add of a constant")
    _raises(Fn(lambda x: x.permute(0, 2, 3, 1)), S, "aten.permute", "flatten")
    _raises(Fn(lambda x: torch.cat([x, x], dim=2)), S, "aten.cat", "channel axis")
    _raises(Fn(lambda x: x.clamp(-1, 1)), S, "clamping to [-1, 1]", "relu6")
    _raises(Fn(lambda x: F.interpolate(x, scale_factor=1.5)), S, "integer factors")
    _raises(Fn(lambda x: F.max_pool2d(x, 2, return_indices=True)[1].float()), S, "indices")
    _raises(nn.AvgPool2d(2, ceil_mode=True), (4, 7, 7), "ceil_mode")


def test_data_dependent_control_flow() -> None:
    def branchy(x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x

    _raises(Fn(branchy), S, "torch.export failed", "hint")


def test_batch_size_must_be_one(tmp_path: Path) -> None:
    with pytest.raises(FrontendError, match="batch size 1"):
        load_module(nn.ReLU(), torch.randn(2, *S))
    path = tmp_path / "b2.pt2"
    torch.export.save(torch.export.export(nn.Conv2d(4, 4, 1).eval(), (torch.randn(2, *S),)), path)
    with pytest.raises(FrontendError, match="batch size 2"):
        load_exported(path)


def test_training_mode_program_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "train.pt2"
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    torch.export.save(torch.export.export(model, (example(S),)), path)
    with pytest.raises(FrontendError, match=r"model\.eval\(\)"):
        load_exported(path)


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("mcutrain.zoo.toy:no_such_factory", "no factory"),
        ("no_such_package_xyz.models:net", "cannot import"),
        ("mcutrain.zoo.toy", "package.module:factory"),
        ("mcutrain.zoo.toy:", "package.module:factory"),
        ("mcutrain.zoo:BUILTIN", "not callable"),
        (f"{__name__}:no_shape_factory", "input shape"),
    ],
)
def test_bad_factory_specs(spec: str, pattern: str) -> None:
    with pytest.raises(FrontendError, match=pattern):
        load_factory(spec)


def test_corrupt_and_missing_pt2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(FrontendError, match=r"not a readable torch\.export program"):
        load_exported(bad)
    with pytest.raises(FrontendError, match="not a readable"):
        load_model(bad)
    with pytest.raises(FrontendError, match="no such model file"):
        load_exported(tmp_path / "missing.pt2")
