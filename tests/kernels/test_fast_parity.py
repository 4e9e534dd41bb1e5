"""End-to-end parity of the host build's fast flavour (libmt_fast.so) against the simulator.

The same check as tests/test_codegen.py (20 steps, losses and parameters to 1e-5 relative, widened only
where float32 PyTorch itself strays from float64), run over the fast build: the vectorized conv2d kernels
of firmware/runtime/host (-O3 -march=native), on the real models: the full update and a channel-subset
update (output-channel ranges: trainable rows in RAM, frozen rows in flash). Kernel-level cases (groups,
depthwise, dilation, odd shapes) are the golden tests of test_fast_conv.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import test_codegen

from mcutrain import api
from mcutrain.emit.host_build import build_host
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind

PASSES = ("fw", "bw_wgrad", "bw_igrad")


def build_fast(project: str | Path) -> Path:
    """The fast flavour, after checking that its training step calls the fast conv2d kernels only."""
    lib = build_host(project, "libmt_fast.so")
    undefined = subprocess.run(
        ["nm", "-u", str(Path(project) / "mt_model_fast.o")], capture_output=True, text=True, check=True
    ).stdout.split()
    conv = {s for s in undefined if s.startswith("mt_conv2d_") and s.endswith("_f32")}
    assert conv and conv <= {f"mt_conv2d_{ps}_fast_f32" for ps in PASSES}, sorted(conv)
    return lib


@pytest.fixture
def fast_parity(monkeypatch: pytest.MonkeyPatch):
    """test_codegen's parity check, building the fast flavour instead of libmt.so."""
    monkeypatch.setattr(test_codegen, "build_host", build_fast)
    return test_codegen._parity


@pytest.mark.skipif(not test_codegen.SHARED.exists(), reason="../shared/data is not present")
@pytest.mark.parametrize(
    "model", ["st_handposture_vl53l5cx_cnn2d_float", "mlperf_tiny_resnet8_cifar10_float"]
)
@pytest.mark.parametrize("strategy", ["full", "subset"])
def test_real_models_fast(model: str, strategy: str, fast_parity, tmp_path: Path) -> None:
    g = api.load(test_codegen.SHARED / "models" / f"{model}.tflite")
    resnet = model.startswith("mlperf")  # same optimizers as test_codegen.test_real_models
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=1e-5) if resnet else OptimizerConfig(lr=0.01)
    fast_parity(g, test_codegen._strategy_plan(g, strategy, api.default_loss(g), opt), tmp_path)
