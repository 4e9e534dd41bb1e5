"""The μPyD-Net depth model: size, shapes, deterministic init, and export to IR-expressible ATen ops."""

from __future__ import annotations

import pytest
import torch

from mcutrain.zoo.depth import INPUT_HW, MAX_DEPTH_M, depth_to_metres, metres_to_target, updepthnet

N_PARAMS = 106_173

# ATen ops that torch.export may produce for this model, each with its IR op. Anything else (in particular
# aten.mul / aten.div by a constant, which the IR cannot express) fails the test.
IR_ATEN_OPS = {
    "aten.conv2d.default": "conv2d",
    "aten.conv_transpose2d.input": "conv_transpose2d",
    "aten.leaky_relu.default": "activation(leaky_relu)",
    "aten.relu.default": "activation(relu)",
    "aten.sigmoid.default": "activation(sigmoid)",
    "aten.cat.default": "concat",
    "aten.upsample_bilinear2d.vec": "upsample(bilinear)",
    "aten.upsample_nearest2d.vec": "upsample(nearest)",
    "aten.add.Tensor": "add",
    "aten.max_pool2d.default": "max_pool2d",
    "aten.avg_pool2d.default": "avg_pool2d",
}


def test_parameter_count() -> None:
    n = sum(p.numel() for p in updepthnet().parameters())
    assert n == N_PARAMS
    assert 100_000 <= n <= 110_000


def test_output_shape_and_range() -> None:
    model = updepthnet().eval()
    assert model.example_input_shape == (1, *INPUT_HW)
    x = torch.rand(3, *model.example_input_shape)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, 1, *INPUT_HW)
    assert torch.all((y > 0) & (y < 1))
    # The head starts at a plausible indoor depth, not at a saturated sigmoid.
    assert 1.5 < float(depth_to_metres(y).mean()) < 4.0


def test_deterministic_init() -> None:
    a, b, c = updepthnet().state_dict(), updepthnet().state_dict(), updepthnet(seed=1).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_gradients_reach_every_parameter() -> None:
    model = updepthnet()
    x = torch.rand(2, *model.example_input_shape)
    loss = (model(x) - 0.3).abs().mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


def test_export_uses_only_ir_ops() -> None:
    model = updepthnet().eval()
    x = torch.rand(1, *model.example_input_shape)
    ep = torch.export.export(model, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    unsupported = targets - IR_ATEN_OPS.keys()
    assert not unsupported, f"ops with no IR equivalent: {sorted(unsupported)}"
    assert {"aten.conv2d.default", "aten.conv_transpose2d.input", "aten.cat.default"} <= targets
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), model(x))


def test_metres_conversion() -> None:
    d = torch.tensor([0.0, 0.5, 2.0, 9.9, 25.0])
    t = metres_to_target(d)
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    torch.testing.assert_close(depth_to_metres(t)[:4], d[:4])
    assert float(depth_to_metres(t)[4]) == MAX_DEPTH_M


def test_imports_through_the_torch_frontend() -> None:
    frontend = pytest.importorskip("mcutrain.frontends.torch", reason="the PyTorch frontend is not there yet")
    from mcutrain.core.semantics import forward

    graph = frontend.load_factory("mcutrain.zoo.depth:updepthnet", None)
    assert graph.num_params() == N_PARAMS
    model = updepthnet().eval()
    x = torch.rand(2, *model.example_input_shape)
    with torch.no_grad():
        torch.testing.assert_close(forward(graph, x), model(x), atol=1e-5, rtol=1e-4)


def test_pretrained_weights_load_and_beat_the_initial_model() -> None:
    from mcutrain.data.scenes import generate
    from mcutrain.zoo.depth import depth_rmse, updepthnet, updepthnet_pretrained

    batch = generate("A", 32, seed=777)
    dense_pre, zones_pre = depth_rmse(updepthnet_pretrained(), batch)
    dense_init, _ = depth_rmse(updepthnet(), batch)
    assert dense_pre < 0.8 * dense_init
    assert dense_pre < 1.2 and zones_pre < 1.5  # pre-training reached 0.68 m / 0.81 m on held-out A
