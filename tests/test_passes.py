"""Graph passes: batch-norm folding and identity removal keep the function and remove what they promise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mcutrain.core import ir, semantics
from mcutrain.core.passes import fold_batchnorm, remove_identities
from mcutrain.frontends.torch import load_module

RNG_SEED = 0


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def bn_params(rng: np.random.Generator, c: int) -> dict[str, np.ndarray]:
    return {
        "gamma": rand(rng, c),
        "beta": rand(rng, c),
        "mean": rand(rng, c),
        "var": (rng.random(c) * 1.5 + 0.25).astype(np.float32),
    }


def assert_same_function(before: ir.Graph, after: ir.Graph, seed: int = 1) -> None:
    shape = before.inputs[0][1]
    x = torch.randn((4, *shape), generator=torch.Generator().manual_seed(seed))
    ref = semantics.forward(before, x).numpy()
    out = semantics.forward(after, x).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-6 * float(np.abs(ref).max()))


def kinds(graph: ir.Graph) -> list[str]:
    return [n.op.kind for n in graph.nodes]


def conv_bn_graph(second_consumer: bool = False, bn_is_output: bool = False) -> ir.Graph:
    rng = np.random.default_rng(RNG_SEED)
    b = ir.GraphBuilder("conv_bn")
    x = b.input("x", (3, 8, 8))
    c = b.add(
        "conv",
        ir.Conv2d(6, (3, 3), padding=(1, 1, 1, 1)),
        [x],
        weight=rand(rng, 6, 3, 3, 3),
        bias=rand(rng, 6),
    )
    y = b.add("bn", ir.BatchNorm(eps=1e-3), [c], **bn_params(rng, 6))
    if bn_is_output:
        return b.build([y])
    if second_consumer:
        y = b.add("add", ir.Add(), [y, c])
    y = b.add("relu", ir.Activation(ir.ActFn.RELU), [y])
    return b.build([y])


def test_conv_bn_is_folded() -> None:
    g = conv_bn_graph()
    f = fold_batchnorm(g)
    assert kinds(f) == ["conv2d", "activation"]
    assert len(f.nodes) == len(g.nodes) - 1
    assert f.node("relu").inputs == ("conv",)
    assert not any(k.startswith("bn.") for k in f.params)
    assert_same_function(g, f)


def test_bn_as_graph_output_is_folded_and_output_renamed() -> None:
    g = conv_bn_graph(bn_is_output=True)
    f = fold_batchnorm(g)
    assert kinds(f) == ["conv2d"] and f.outputs == ("conv",)
    assert_same_function(g, f)


def test_shared_conv_output_becomes_channel_affine() -> None:
    g = conv_bn_graph(second_consumer=True)
    f = fold_batchnorm(g)
    assert kinds(f) == ["conv2d", "channel_affine", "add", "activation"]
    np.testing.assert_array_equal(f.param("conv", "weight"), g.param("conv", "weight"))
    bn = g.node("bn")
    scale = g.param("bn", "gamma") / np.sqrt(g.param("bn", "var") + bn.op.eps)
    np.testing.assert_allclose(f.param("bn", "weight"), scale, rtol=1e-6)
    np.testing.assert_allclose(
        f.param("bn", "bias"), g.param("bn", "beta") - g.param("bn", "mean") * scale, rtol=1e-5
    )
    assert_same_function(g, f)


def test_bn_on_graph_input_and_chained_bns() -> None:
    rng = np.random.default_rng(RNG_SEED)
    b = ir.GraphBuilder("chain")
    x = b.input("x", (4, 5, 5))
    y = b.add("bn0", ir.BatchNorm(), [x], **bn_params(rng, 4))
    y = b.add("conv", ir.Conv2d(4, (1, 1), groups=4), [y], weight=rand(rng, 4, 1, 1, 1), bias=rand(rng, 4))
    y = b.add("bn1", ir.BatchNorm(), [y], **bn_params(rng, 4))
    y = b.add("bn2", ir.BatchNorm(), [y], **bn_params(rng, 4))
    g = b.build([y])
    f = fold_batchnorm(g)
    assert kinds(f) == ["channel_affine", "conv2d"]
    assert_same_function(g, f)


def test_linear_bn1d_is_folded() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.BatchNorm1d(7), nn.ReLU())
    with torch.no_grad():
        bn = model[2]
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.3, 2.0)
        bn.weight.normal_()
        bn.bias.normal_()
    g = load_module(model, torch.randn(1, 3, 2, 2), fold_bn=False)
    assert kinds(g) == ["reshape", "linear", "batch_norm", "activation"]
    f = fold_batchnorm(g)
    assert kinds(f) == ["reshape", "linear", "activation"]
    assert_same_function(g, f)
    x = torch.randn(5, 3, 2, 2)
    np.testing.assert_allclose(semantics.forward(f, x), model.eval()(x).detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose_bn_is_folded(groups: int) -> None:
    rng = np.random.default_rng(groups)
    b = ir.GraphBuilder("up")
    x = b.input("x", (4, 3, 5))
    op = ir.ConvTranspose2d(6, (3, 3), stride=(2, 2), padding=(1, 0, 1, 0), groups=groups)
    y = b.add("up", op, [x], weight=rand(rng, 4, 6 // groups, 3, 3), bias=rand(rng, 6))
    y = b.add("bn", ir.BatchNorm(), [y], **bn_params(rng, 6))
    g = b.build([y])
    f = fold_batchnorm(g)
    assert kinds(f) == ["conv_transpose2d"]
    assert_same_function(g, f)


def test_remove_identities() -> None:
    b = ir.GraphBuilder("shapes")
    x = b.input("x", (2, 3, 4))
    y = b.add("same", ir.Reshape((2, 3, 4)), [x])
    y = b.add("r1", ir.Reshape((6, 4)), [y])
    y = b.add("r2", ir.Reshape((24,)), [y])
    y = b.add("relu", ir.Activation(ir.ActFn.RELU), [y])
    g = b.build([y])
    f = remove_identities(g)
    assert [n.name for n in f.nodes] == ["r2", "relu"]
    assert f.node("r2").inputs == ("x",)
    assert_same_function(g, f)
