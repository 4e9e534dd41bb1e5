"""The gap9 target's generated sources on gap9-rv32-qemu: the training step as PULP cluster tasks over the
portable PMSIS (sequential team fork, memcpy DMA), cross-built for rv32imfc and run in QEMU, decided by the
firmware's exit status.

Models: the ST hand-posture CNN (full and auto plans: conv2d and linear on the cluster) and a small depth
network of the same family as the motivating one (strided conv, transposed conv, concat, bilinear upsample,
Adam) with its L1 squeezed to 3 KB, so that every tiled kernel runs in several tiles, with and without its
input staged in L1. The host build of the same plan trains on the same samples and the device's losses and
parameters must equal the host's to float round-off; the gap9 project (GAP SDK) holds the same sources.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED, require_board

from mcutrain import api
from mcutrain.boards.targets import Target, load_target
from mcutrain.cli import main
from mcutrain.emit.c_text import c_array, c_float
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware
from mcutrain.emit.firmware_project import FirmwareError, emit_firmware
from mcutrain.emit.firmware_run import run_firmware
from mcutrain.emit.host_build import HostModel, build_host
from mcutrain.emit.model_c import emit
from mcutrain.emit.pulp import l1_linked_bytes
from mcutrain.emit.selftest import EXIT_CODES, SelfTest
from mcutrain.frontends.torch import load_module
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind
from mcutrain.zoo.depth import UPyDNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the link harness

pytestmark = pytest.mark.emulator

BOARD = "gap9-rv32-qemu"
HANDPOSTURE = SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite"
STEPS = 3
TIMEOUT_S = 60.0
SQUEEZED_L1 = 3 * 1024  # the mini depth network's tiles: several per kernel, some inputs left in L2
HOST_TOL = 1e-6  # device against host build, relative (libm's expf/logf differ in the last bits)


def _squeezed(t: Target, l1: int) -> Target:
    """The board with only ``l1`` bytes of L1 for the tiles."""
    assert t.cluster is not None
    region = t.region(t.cluster.l1_region).length
    return dataclasses.replace(t, cluster=dataclasses.replace(t.cluster, l1_reserve=region - l1))


@cache
def _case(name: str) -> tuple:
    """(graph, plan, samples, target) of a case."""
    t = load_target(BOARD)
    if name == "mini_depth":
        torch.manual_seed(0)
        net = UPyDNet(input_hw=(16, 16), enc=(4, 8), dec=(4, 8)).eval()
        g = load_module(net, torch.rand(1, 1, 16, 16), "mini_depth")
        plan = api.plan(g, None, "full", optimizer=OptimizerConfig(OptimizerKind.ADAM, lr=1e-2)).plan
        return g, plan, SelfTest.random(g, plan, STEPS), _squeezed(t, SQUEEZED_L1)
    if not HANDPOSTURE.is_file():
        pytest.skip(f"{HANDPOSTURE} is absent (../shared/data: the real models)")
    g = api.load(HANDPOSTURE)
    opt = OptimizerConfig(lr=0.01)
    if name == "handposture-auto":
        plan = api.plan(g, 16 * 1024, "auto", score="proxy", optimizer=opt).plan
    else:
        plan = api.plan(g, None, "full", optimizer=opt).plan
    return g, plan, SelfTest.random(g, api.plan(g, None, "full").plan, STEPS), t


_BUILDS: dict[str, FirmwareBuild] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gap9")


def _build(name: str, root: Path) -> FirmwareBuild:
    if name not in _BUILDS:
        g, plan, st, t = _case(name)
        proj = emit_firmware(g, plan, root / name, t, st)
        _BUILDS[name] = build_firmware(proj.out_dir)
    return _BUILDS[name]


@pytest.mark.parametrize("name", ["handposture-full", "mini_depth"])
def test_selftest_passes_on_gap9_rv32_qemu(name: str, root: Path) -> None:
    require_board(BOARD)
    fb = _build(name, root)
    src = (fb.project / "mt_model.c").read_text()
    assert "mt_cl_conv2d_fw_f32(" in src and "mt_cl_activation_fw_f32(" in src  # the step runs on the cluster
    r = run_firmware(fb, TIMEOUT_S)
    assert r.exit_code == EXIT_CODES["pass"], r.run.stdout + r.run.stderr
    rep = r.report
    assert rep["passed"] and rep["loss_err"] <= rep["tol_loss"] and rep["param_err"] <= rep["tol_param"]
    # L2: linked RAM within the plan; L1: the linked tile buffer is the plan's largest working set
    cl = fb.manifest["cluster"]
    assert fb.size.ram_bytes <= fb.plan_peak_ram
    assert cl["l1_bytes"] <= l1_linked_bytes(fb.size.sections, fb.target) <= cl["l1_bytes"] + 12
    assert cl["l1_bytes"] == max(s[4] for s in cl["steps"]) <= cl["l1_budget"]
    assert rep["stack_step"] < rep["stack_size"]  # painted: the team fork's calls through pointers included


def test_parameters_equal_the_host_builds(root: Path) -> None:
    """The squeezed mini depth network (every tiled kernel in several tiles, Adam): the firmware's expected
    losses and parameters are replaced by those of the host build of the same plan on the same samples,
    with a tolerance of 1e-6: the cluster lowering computes what the host computes."""
    require_board(BOARD)
    g, plan, st, t = _case("mini_depth")
    host_dir = root / "mini_depth_host"
    emit(g, plan, host_dir)
    host = HostModel(build_host(host_dir), g, plan)
    losses = []
    for i in range(st.steps):
        rc, loss = host.train_step(st.x[i], st.target[i])
        assert rc == 0
        losses.append(loss)
    flat = host.export_flat()
    proj = emit_firmware(g, plan, root / "mini_depth_vs_host", t, st).out_dir
    main = proj / "main.c"
    src = main.read_text()
    src = re.sub(r"#define MT_FW_TOL_(LOSS|PARAM) \S+", rf"#define MT_FW_TOL_\1 {c_float(HOST_TOL)}", src)
    src = re.sub(
        r"(mt_fw_loss\[MT_FW_STEPS\] = \{\n).*?(\n\};)",
        rf"\g<1>{c_array(np.array(losses))}\g<2>",
        src,
        flags=re.S,
    )
    off = 0
    for name, n in re.findall(r"static const float mt_fw_want_(\w+)\[(\d+)\]", src):
        values = c_array(flat[off : off + int(n)])
        src = re.sub(
            rf"(mt_fw_want_{name}\[{n}\] = \{{\n).*?(\n\}};)", rf"\g<1>{values}\g<2>", src, flags=re.S
        )
        off += int(n)
    assert off == flat.size
    main.write_text(src)
    r = run_firmware(build_firmware(proj), TIMEOUT_S)
    assert r.exit_code == EXIT_CODES["pass"], r.run.stdout
    assert r.report["tol_param"] == HOST_TOL and r.report["param_err"] <= HOST_TOL


def test_cli_runs_the_auto_plans_selftest(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hand-posture CNN's auto plan (16 KB) through `mcutrain run --target gap9-rv32-qemu` (which
    builds first): the exit status is the firmware's, and the self-test passes."""
    require_board(BOARD)
    g, plan, st, t = _case("handposture-auto")
    proj = emit_firmware(g, plan, root / "handposture-auto", t, st).out_dir
    assert main(["run", str(proj), "--target", BOARD, "--timeout", str(TIMEOUT_S)]) == EXIT_CODES["pass"]
    out = capsys.readouterr()
    assert "PASS" in out.out and "for gap9-rv32-qemu (selftest" in out.err


def test_gap9_project_has_the_same_sources(root: Path) -> None:
    """The gap9 (GAP SDK) project holds the same generated and runtime sources as gap9-rv32-qemu's; only
    the Makefile, the manifest and the board support differ (and main.c's comment naming the board)."""
    g, plan, st, _ = _case("handposture-auto")
    dirs = {b: emit_firmware(g, plan, root / f"same-{b}", b, st).out_dir for b in ("gap9", BOARD)}

    def files(d: Path) -> dict[str, bytes]:
        out = {}
        for p in sorted(d.rglob("*")):
            rel = str(p.relative_to(d))
            if p.is_file() and not rel.startswith(("bsp/", "Makefile.", "build/")) and rel != "firmware.json":
                out[rel] = p.read_bytes().replace(b"gap9-rv32-qemu", b"gap9")
        return out

    sdk, qemu = files(dirs["gap9"]), files(dirs[BOARD])
    assert sdk.keys() == qemu.keys() and "pulp/mt_cl_conv.c" in sdk and "mt_cluster_plan.h" in sdk
    assert [k for k in sdk if sdk[k] != qemu[k]] == []
    mk = (dirs["gap9"] / "Makefile.gap9").read_text()
    sources = re.findall(r"^\t(\S+\.c)", mk, re.M)
    assert "pmsis_rules.mk" in mk and "pulp/mt_cl_conv.c" in sources and "main.c" in sources
    assert not any("pmsis_portable" in src for src in sources)  # the SDK's PMSIS instead
    for src in sources:
        assert (dirs["gap9"] / src).is_file(), src
    # the plan fits; building says how (the GAP SDK), with the L1 and L2 numbers
    with pytest.raises(FirmwareError, match=r"GAP SDK.*L2 [\d,]+ of [\d,]+ B, L1 [\d,]+ of [\d,]+ B"):
        build_firmware(dirs["gap9"])
