"""The gap9 memory plan (mcutrain/gap9.py) without an emulator: L1 working sets per step of the ResNet-8 and
depth-network plans stay within the cluster's L1, L2 overflows fail the build naming both numbers, and
the tile choice is the documented one."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
import torch

from mcutrain import api
from mcutrain.boards.targets import load_target
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import FirmwareError, emit_firmware
from mcutrain.emit.pulp import ClusterMemory, L1Error, choose_tile, l1_budget
from mcutrain.frontends.torch import load_module
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind

BOARD = "gap9-rv32-qemu"
L1_KB = 128 * 1024
RESNET8 = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "models"
    / "mlperf_tiny_resnet8_cifar10_float.tflite"
)
ADAM = OptimizerConfig(OptimizerKind.ADAM, lr=1e-4)
#: (model, strategy, budget): the depth network's full update (1.54 MB with Adam) and its auto plan at
#: 1/2.2 of it (docs/results.md), ResNet-8 last layer and auto at 256 KB.
PLANS = [("depth", "full", None), ("depth", "auto", 734_514), ("resnet8", "auto", 256 * 1024)]


@cache
def _emitted(model: str, strategy: str, budget: int | None, root: str) -> tuple:
    if model == "resnet8" and not RESNET8.is_file():
        pytest.skip(f"{RESNET8} is absent (../shared/data: the real models)")
    g = api.load(RESNET8 if model == "resnet8" else model)
    plan = api.plan(g, budget, strategy, score="proxy", optimizer=ADAM).plan
    return g, plan, emit_firmware(g, plan, Path(root) / f"{model}-{strategy}", BOARD)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("gap9mem"))


@pytest.mark.parametrize(("model", "strategy", "budget"), PLANS)
def test_no_working_set_exceeds_l1(model: str, strategy: str, budget: int | None, root: str) -> None:
    _, _, fp = _emitted(model, strategy, budget, root)
    cm: ClusterMemory = fp.emitted.cluster
    train = [s for s in cm.steps if s.phase == "train"]
    assert len(train) == len(fp.emitted.memory.train_graph.steps)
    assert all(s.l1_bytes <= cm.l1_budget < L1_KB for s in cm.steps)
    assert cm.l1_bytes == max(s.l1_bytes for s in cm.steps) <= l1_budget(load_target(BOARD))
    # every conv/linear pass of the step runs in L1 tiles; the element-wise ones on the cluster in L2
    for s in train:
        if s.prof.split("_")[0] in ("conv2d", "conv", "linear") and not s.prof.endswith("update"):
            assert s.where == "cluster, L1 tiles" and s.l1_bytes > 0, s
        if s.prof.startswith("activation") or s.prof.endswith("update"):
            assert s.where == "cluster, L2" and s.l1_bytes == 0, s
    header = (fp.out_dir / "mt_cluster_plan.h").read_text()
    assert f"#define MT_CL_L1_BYTES {cm.l1_bytes}u" in header
    assert json.loads((fp.out_dir / "firmware.json").read_text())["cluster"]["l1_bytes"] == cm.l1_bytes


def test_depth_full_update_fails_l2_and_its_auto_plan_fits(root: str) -> None:
    _, _, full = _emitted("depth", "full", None, root)
    cm = full.emitted.cluster
    assert cm.l2_plan == full.emitted.memory.peak_ram_bytes > 1_500_000  # 1.54 MB with Adam
    with pytest.raises(FirmwareError, match=rf"needs {cm.l2_need:,} B .*L2 has {cm.l2_available:,} B"):
        build_firmware(full.out_dir)
    _, _, auto = _emitted("depth", "auto", 734_514, root)
    auto.emitted.cluster.check()  # fits L2 and L1
    assert auto.emitted.cluster.l2_need <= auto.emitted.cluster.l2_available


def test_an_l1_overflow_fails_the_build_naming_both_numbers(root: str) -> None:
    """A manifest whose step needs more L1 than the tiles may use is refused before compiling."""
    _, _, fp = _emitted("resnet8", "auto", 256 * 1024, root)
    path = fp.out_dir / "firmware.json"
    m = json.loads(path.read_text())
    m["cluster"]["steps"][3][4] = 200_000
    path.write_text(json.dumps(m))
    budget = l1_budget(load_target(BOARD))
    with pytest.raises(FirmwareError, match=rf"step 3 \(\w+\) needs 200,000 B of L1, .* {budget:,} B"):
        build_firmware(fp.out_dir)


def test_a_layer_whose_channel_cannot_fit_l1_is_refused(tmp_path: Path) -> None:
    g = load_module(torch.nn.Sequential(torch.nn.Linear(30_000, 4)).eval(), torch.rand(1, 30_000), "wide")
    plan = api.plan(g, None, "full").plan
    with pytest.raises(
        L1Error, match=r"fw of .*: one channel needs 120,008 B of L1, more than the 114,688 B"
    ):
        emit_firmware(g, plan, tmp_path, BOARD)


def test_tiles_stage_the_shared_input_only_when_every_core_still_gets_a_channel() -> None:
    # 16 channels of 1 KB and an 8 KB input in 20 KB: the input and 8 channels fit -> staged; 12 channels
    # fit beside it, so 2 tiles, balanced to 8 channels each
    t = choose_tile(8192, 1024, 16, 20 * 1024, 8, "x")
    assert (t.units, t.stage, t.l1_bytes) == (8, True, 8192 + 8 * 1024)
    # a 16 KB input leaves room for 4 channels only: read it from L2, 16 channels in one tile
    t = choose_tile(16384, 1024, 16, 20 * 1024, 8, "x")
    assert (t.units, t.stage, t.l1_bytes) == (16, False, 16 * 1024)
    # 10 channels, at most 4 per tile: 3 tiles (4, 4, 2)
    t = choose_tile(0, 1000, 10, 4000, 8, "x")
    assert (t.units, t.l1_bytes) == (4, 4000)
    with pytest.raises(L1Error, match=r"x: one channel needs 5,000 B of L1, more than the 4,000 B"):
        choose_tile(0, 5000, 10, 4000, 8, "x")


def test_gap9_boards_describe_the_same_cluster() -> None:
    sdk, qemu = load_target("gap9"), load_target(BOARD)
    assert sdk.cluster is not None and qemu.cluster is not None
    assert (sdk.cluster.cores, sdk.cluster.l1_reserve, sdk.cluster.l2_reserve) == (
        qemu.cluster.cores,
        qemu.cluster.l1_reserve,
        qemu.cluster.l2_reserve,
    )
    assert sdk.region("L1").length == qemu.region("L1").length == L1_KB
    assert sdk.ram.length == qemu.ram.length == 1536 * 1024
    assert sdk.build_system == "gap-sdk" and qemu.build_system == "mcutrain"
    assert re.search(r"\.l1 \(NOLOAD\)", qemu.linker_script.read_text())
