"""The shared adaptation runner (mcutrain.adapt) in the simulator, on the built-in 64-64-32-10 MLP.

The reference is PyTorch autograd: the MLP's own nn.Module trained with torch.optim.SGD on the same
decoded samples in the same order must end with the runner's parameters and accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcutrain import api
from mcutrain.demos.adaptation import InputEncoding, accuracy, label_samples, run_adaptation
from mcutrain.train.update_plan import LossConfig, LossKind, OptimizerConfig, PlanError
from mcutrain.zoo.toy import mlp

LR = 0.05
ENC = InputEncoding.u8(1.0 / 255.0)


@pytest.fixture(scope="module")
def task() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images in [0, 1] labelled by a fixed random linear teacher: learnable, unknown to the MLP."""
    rng = np.random.default_rng(3)
    x = rng.random((600, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(600, -1) @ rng.standard_normal((64, 10))).argmax(axis=1)
    return x[:400], y[:400], x[400:], y[400:]


def _torch_reference(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(last layer's weight and bias, test predictions) of the MLP after SGD by PyTorch autograd."""
    model = mlp()
    last = model[-1]
    for p in model.parameters():
        p.requires_grad_(p is last.weight or p is last.bias)
    opt = torch.optim.SGD([last.weight, last.bias], lr=LR)
    for i in range(len(y)):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            model(torch.from_numpy(x[i : i + 1])), torch.tensor(y[i : i + 1])
        )
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    return np.concatenate([last.weight.detach().numpy().ravel(), last.bias.detach().numpy()]), pred


def test_runner_equals_pytorch_autograd(task: tuple[np.ndarray, ...]) -> None:
    x, y, xt, yt = task
    g = api.load("mlp")
    res = api.plan(g, None, "last-layer", optimizer=OptimizerConfig(lr=LR))
    r = run_adaptation(g, res, x, y, xt, yt, ENC, yardstick=True)
    want, pred = _torch_reference(ENC.decode(x), y, ENC.decode(xt))
    np.testing.assert_allclose(r.simulator_params, want, rtol=1e-5, atol=1e-6)
    assert r.simulator_accuracy == float(np.mean(pred == yt))
    assert r.accuracy_before == accuracy(g, ENC.decode(xt), yt)
    assert r.simulator_accuracy > r.accuracy_before + 0.15  # the teacher's labels are learnable
    assert r.accuracy_after == r.simulator_accuracy and r.device_accuracy is None
    assert r.float32_vs_float64_max_abs is not None and 0 < r.float32_vs_float64_max_abs < 1e-5
    assert r.float64_accuracy == r.simulator_accuracy and r.device_vs_float64_max_abs is None
    assert r.samples == 400 and r.test_samples == 200 and len(r.simulator_losses) == 400
    assert r.trainable_params == 32 * 10 + 10 and r.peak_ram_bytes == res.memory.peak_ram_bytes
    d = r.to_dict()
    assert "simulator_params" not in d and "simulator_losses" not in d and d["budget_bytes"] is None


@pytest.mark.parametrize(
    "enc", [InputEncoding.u8(2.0 / 255.0, -1.0), InputEncoding.i16(1.0 / 256.0, 0.5), InputEncoding()]
)
def test_encoding_decodes_as_the_device_does(enc: InputEncoding) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (5, 1, 8, 8)).astype(np.float32)
    samples = label_samples(x, np.arange(5), 10, enc)
    got = np.stack([s.input.to_floats() for s in samples]).reshape(x.shape)
    np.testing.assert_array_equal(enc.decode(x), got)  # bit for bit: what the simulator trains on
    step = enc.scale if enc.kind != "f32" else 0.0
    assert np.max(np.abs(enc.decode(x) - x)) <= step / 2 + 1e-6
    assert [int(np.argmax(s.target.to_floats(role="target"))) for s in samples] == list(range(5))


def test_encoding_reports_clipping() -> None:
    enc = InputEncoding.u8(1.0 / 255.0)
    x = np.array([-0.5, 0.0, 0.5, 1.0, 2.0], np.float32)
    assert enc.clipped(x) == pytest.approx(0.4)
    assert enc.decode(x)[[0, 4]].tolist() == [0.0, 1.0]
    with pytest.raises(PlanError, match="unknown input encoding"):
        InputEncoding("f16")


def test_bad_input_is_explained(task: tuple[np.ndarray, ...]) -> None:
    x, y, xt, yt = task
    g = api.load("mlp")
    res = api.plan(g, None, "bias-only", optimizer=OptimizerConfig(lr=LR))
    with pytest.raises(PlanError, match=r"labels must lie in \[0, 10\)"):
        run_adaptation(g, res, x, y + 5, xt, yt)
    with pytest.raises(PlanError, match="one label per input of shape"):
        run_adaptation(g, res, x[:, :, :4], y, xt, yt)
    with pytest.raises(PlanError, match="empty test set"):
        run_adaptation(g, res, x[:8], y[:8], xt[:0], yt[:0])
    mse = api.plan(g, None, "bias-only", loss=LossConfig(LossKind.MSE))
    with pytest.raises(PlanError, match="loss xent"):
        run_adaptation(g, mse, x, y, xt, yt)
