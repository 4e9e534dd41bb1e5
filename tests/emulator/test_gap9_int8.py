"""The int8 forwards on GAP9's cluster: the four int8 models of ../shared/data/models (the plans of
test_int8_firmware) emitted for gap9-rv32-qemu, where the lowering sends every int8 conv2d (depthwise
included) and linear forward to the cluster (mt_cl_conv2d_fw_s8, mt_cl_linear_fw_s8: L1 tiles, 8 cores),
cross-built and run in QEMU, decided by the self-test's exit status.

Exactness: the same plan built for rv32-qemu (plain C, the portable kernels on one core, the same compiler)
prints the same last loss and the same errors against the simulator to 9 and 4 digits; with KWS's L1
squeezed to 4 KB (several tiles per call, the pointwise convolutions' input left in L2) too."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from conftest import require_board
from test_int8_firmware import CASES, TIMEOUT_S, _case

from mcutrain.boards.targets import Target, load_target
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import run_firmware
from mcutrain.emit.pulp import l1_linked_bytes
from mcutrain.emit.selftest import EXIT_CODES

pytestmark = pytest.mark.emulator

BOARD, PLAIN = "gap9-rv32-qemu", "rv32-qemu"
SQUEEZED_L1 = 4 * 1024
_RESULT = re.compile(r"^(max error: .*|last loss .*)$", re.M)


def _squeezed(t: Target, l1: int) -> Target:
    assert t.cluster is not None
    region = t.region(t.cluster.l1_region).length
    return dataclasses.replace(t, cluster=dataclasses.replace(t.cluster, l1_reserve=region - l1))


def _run(name: str, target: Target | str, out: Path) -> tuple[str, dict, Path]:
    g, plan, st = _case(name)
    proj = emit_firmware(g, plan, out, target, st)
    fb = build_firmware(proj.out_dir)
    r = run_firmware(fb, TIMEOUT_S)
    assert not r.run.timed_out, r.run.message
    assert r.exit_code == EXIT_CODES["pass"], r.run.stdout + r.run.stderr
    if isinstance(target, Target) or target == BOARD:
        cl = fb.manifest["cluster"]
        assert fb.size.ram_bytes <= fb.plan_peak_ram
        assert cl["l1_bytes"] <= l1_linked_bytes(fb.size.sections, fb.target) <= cl["l1_bytes"] + 12
        assert cl["l1_bytes"] == max(s[4] for s in cl["steps"]) <= cl["l1_budget"]
    return "\n".join(_RESULT.findall(r.run.stdout)), fb.manifest, proj.out_dir


def _int8_mac_calls(src: str) -> tuple[list[str], list[str]]:
    """(cluster calls, fabric-controller calls) of the int8 conv2d / linear forwards in mt_model.c."""
    cl = re.findall(r"\bmt_cl_(?:conv2d|linear)_fw_s8\(", src)
    fc = re.findall(r"\bmt_(?:conv2d|linear)_fw_s8\(", src)
    return cl, fc


@pytest.mark.parametrize("name", list(CASES))
def test_int8_forwards_run_on_the_cluster_and_equal_one_core(name: str, tmp_path: Path) -> None:
    require_board(BOARD)
    require_board(PLAIN)
    got, manifest, proj = _run(name, BOARD, tmp_path / "gap9")
    cl, fc = _int8_mac_calls((proj / "mt_model.c").read_text())
    assert cl and not fc, (cl, fc)  # every int8 conv2d / linear forward is a cluster task
    steps = manifest["cluster"]["steps"]
    s8 = [s for s in steps if s[2] in ("conv2d_fw_s8", "linear_fw_s8")]
    assert s8 and all(s[3] == "cluster, L1 tiles" and s[4] > 0 for s in s8), s8
    want, _, _ = _run(name, PLAIN, tmp_path / "rv32")
    assert got and got == want


def test_squeezed_l1_tiles_equal_one_core(tmp_path: Path) -> None:
    """KWS (depthwise and pointwise convolutions) with 4 KB of L1: every int8 call in several tiles, the
    64-channel inputs of the pointwise convolutions read from L2 in place."""
    require_board(BOARD)
    require_board(PLAIN)
    name = "mlperf_kws_dscnn_int8"
    got, manifest, _ = _run(name, _squeezed(load_target(BOARD), SQUEEZED_L1), tmp_path / "gap9")
    s8 = [s for s in manifest["cluster"]["steps"] if s[2] == "conv2d_fw_s8"]
    assert s8 and all(0 < s[4] <= SQUEEZED_L1 for s in s8)
    want, _, _ = _run(name, PLAIN, tmp_path / "rv32")
    assert got and got == want


def test_kws_tiles_count_int8_bytes(tmp_path: Path) -> None:
    """KWS's L1 plan by hand: int8 input and weights (1 B), int32 bias, mult and shift (4 B each) per
    channel, int8 outputs; the first conv (1 x 49 x 10 input staged, 64 channels of 10 x 4 taps onto
    25 x 5), a depthwise 3 x 3 (64 groups, each with its own 25 x 5 input) and a pointwise conv (the
    64 x 25 x 5 input staged)."""
    g, plan, st = _case("mlperf_kws_dscnn_int8")
    proj = emit_firmware(g, plan, tmp_path / "fw", BOARD, st)
    l1 = {s[4] for s in proj.manifest["cluster"]["steps"] if s[2] == "conv2d_fw_s8"}
    first = 496 + 64 * (4 + 4 + 4 + 40 + 125)  # r8(490) staged input
    depthwise = 64 * (4 + 4 + 4 + 9 + 125 + 125)
    pointwise = 64 * 125 + 64 * (4 + 4 + 4 + 64 + 125)
    assert l1 == {first, depthwise, pointwise}
