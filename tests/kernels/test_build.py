"""The runtime builds clean for the host and Cortex-M4F, its ABI matches the bindings, its scratch-size
functions exist, and its sources are clang-formatted."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .ckernels import (
    CM4F_FLAGS,
    INCLUDE,
    PROTOTYPES,
    REPO,
    RUNTIME,
    SOURCES,
    WARN_FLAGS,
    abi_expected,
    ptr,
    scratch,
)
from .golden import FW, assert_close, rand

HEADERS = (INCLUDE / "mt_kernels.h", INCLUDE / "mt_kernels_s8.h")


def test_sources_present():
    names = {p.name for p in SOURCES}
    for required in ("mt_conv2d.c", "mt_conv_transpose2d.c", "mt_linear.c", "mt_loss.c", "mt_optim.c"):
        assert required in names


def test_struct_layout_matches_header(kernels):
    """sizeof / offsetof of every dims struct, from the compiled header, equal the ctypes mirrors."""
    expected = abi_expected()
    got = [kernels.lib.mt_abi_probe(i) for i in range(len(expected))]
    assert got == expected


def test_every_declared_function_is_bound():
    """Every function the public headers declare has a ctypes prototype from the op table (and vice
    versa)."""
    declared: set[str] = set()
    for header in HEADERS:
        text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
        declared |= set(re.findall(r"\b(mt_\w+)\s*\(", text))
    assert declared == set(PROTOTYPES)


# fmt: off
_CONV = dict(in_c=4, in_h=9, in_w=8, out_c=6, out_h=5, out_w=4, kernel_h=3, kernel_w=3, stride_h=2,
             stride_w=2, dilation_h=1, dilation_w=1, pad_top=1, pad_left=1, groups=2)
# fmt: on
_CONVT = dict(_CONV, in_h=3, in_w=3, out_h=6, out_w=6)
SCRATCH_OPS = {
    "mt_conv2d": ("mt_conv2d_dims_t", _CONV),
    "mt_conv_transpose2d": ("mt_conv_transpose2d_dims_t", _CONVT),
    "mt_linear": ("mt_linear_dims_t", dict(in_features=12, out_features=5)),
}


@pytest.mark.parametrize("op", list(SCRATCH_OPS))
def test_scratch_interface(kernels, op):
    """Each pass reports its scratch size (whole floats) and runs with exactly that much."""
    struct, fields = SCRATCH_OPS[op]
    d = kernels.dims(struct, **fields)
    sizes = {ps: getattr(kernels, f"{op}_{ps}_scratch_bytes")(d) for ps in ("fw", "bw_wgrad", "bw_igrad")}
    for ps, nbytes in sizes.items():
        assert nbytes % 4 == 0 and nbytes < 1 << 20, f"{op}_{ps}_scratch_bytes = {nbytes}"
    rng = np.random.default_rng(0)
    if op == "mt_linear":
        x, w, gy = (
            rand(rng, d.in_features),
            rand(rng, d.out_features, d.in_features),
            rand(rng, d.out_features),
        )
        n_out = d.out_features
    else:
        x = rand(rng, d.in_c, d.in_h, d.in_w)
        w = rand(rng, d.out_c, d.in_c // d.groups, d.kernel_h, d.kernel_w)
        gy = rand(rng, d.out_c, d.out_h, d.out_w)
        n_out = d.out_c
    b = rand(rng, n_out)
    y = np.full(gy.shape, np.nan, np.float32)
    gw, gb, gx = np.empty_like(w), np.empty_like(b), np.empty_like(x)
    getattr(kernels, f"{op}_fw_f32")(d, 0, n_out, ptr(x), ptr(w), ptr(b), ptr(y), ptr(scratch(sizes["fw"])))
    getattr(kernels, f"{op}_bw_wgrad_f32")(
        d, 0, n_out, ptr(x), ptr(gy), ptr(gw), ptr(gb), 0, ptr(scratch(sizes["bw_wgrad"]))
    )
    getattr(kernels, f"{op}_bw_igrad_f32")(
        d, 0, n_out, ptr(w), ptr(gy), ptr(gx), 0, ptr(scratch(sizes["bw_igrad"]))
    )
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gw)) and np.all(np.isfinite(gx))
    assert_close(gb, gy.reshape(n_out, -1).sum(axis=1), FW, f"{op} gb")


def _compile_each(cc: list[str], flags: list[str], out: Path) -> list[Path]:
    objs = []
    for src in SOURCES:
        obj = out / (src.stem + ".o")
        cmd = [*cc, *flags, f"-I{INCLUDE}", "-c", str(src), "-o", str(obj)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
        objs.append(obj)
    return objs


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not on PATH")
def test_cortex_m4f_build(tmp_path):
    """Cortex-M4F (single-precision FPU) build with -Werror; no double-precision helper is linked in."""
    objs = _compile_each(["arm-none-eabi-gcc"], CM4F_FLAGS, tmp_path)
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        return
    res = subprocess.run([nm, "-u", *map(str, objs)], capture_output=True, text=True, check=True)
    undefined = set(res.stdout.split())
    doubles = sorted(s for s in undefined if re.match(r"__aeabi_(d\w+|f2d|i2d|ui2d|l2d)$", s))
    assert not doubles, f"double-precision arithmetic in the kernels: {doubles}"
    allowed = {"U", "expf", "logf", "powf", "sqrtf", "tanhf", "memset", "memcpy", "memmove"}
    res = subprocess.run([nm, "--defined-only", *map(str, objs)], capture_output=True, text=True, check=True)
    defined = {line.split()[-1] for line in res.stdout.splitlines() if len(line.split()) == 3}
    extra = {s for s in undefined if not s.endswith(":")} - allowed - defined  # the runtime's own: fine
    assert not extra, f"unexpected external symbols: {sorted(extra)}"


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not on PATH")
def test_clang_build(tmp_path):
    """A second host compiler with the same warnings (and -Wpedantic)."""
    _compile_each(["clang"], ["-O1", *WARN_FLAGS, "-Wpedantic"], tmp_path)


@pytest.mark.skipif(shutil.which("clang-format") is None, reason="clang-format is not on PATH")
def test_clang_format():
    files = [*SOURCES, *RUNTIME.glob("src/*.h"), *INCLUDE.glob("*.h")]
    res = subprocess.run(
        [
            "clang-format",
            f"--style=file:{REPO / '.clang-format'}",
            "--dry-run",
            "-Werror",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, f"run clang-format -i on the runtime sources:\n{res.stderr[:2000]}"


def _redeclare(kernels: list, headers: list[str], tmp_path: Path, include: list[Path]):  # type: ignore[no-untyped-def]
    """Compile ``headers`` followed by every prototype again: C rejects a redeclaration with other types."""
    src = tmp_path / "protos.c"
    src.write_text(
        "".join(f'#include "{h}"\n' for h in headers) + "\n".join(kn.prototype() for kn in kernels) + "\n"
    )
    cmd = ["gcc", *WARN_FLAGS, *(f"-I{d}" for d in include), "-fsyntax-only", str(src)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_op_table_prototypes_match_the_header(tmp_path: Path) -> None:
    """The prototypes of the op table (mcutrain.core.op_table, core.kernels), which code generation binds
    by parameter name, are the header's: the same names, types and order."""
    from mcutrain.core.kernels import STEP_KERNELS, scratch_query
    from mcutrain.core.op_table import int8_kernels, op_kernels

    kernels = [*op_kernels(), *int8_kernels(), *STEP_KERNELS.values()]
    kernels += [scratch_query(kn) for kn in kernels if any(p.name == "scratch" for p in kn.params)]
    r = _redeclare(kernels, ["mt_kernels.h", "mt_kernels_s8.h"], tmp_path, [INCLUDE])
    assert r.returncode == 0, r.stderr
    bad = kernels[0].prototype().replace("int32_t co_begin", "float co_begin")  # the check can fail
    (tmp_path / "bad.c").write_text(f'#include "mt_kernels.h"\n{bad}\n')
    r = subprocess.run(["gcc", f"-I{INCLUDE}", "-fsyntax-only", str(tmp_path / "bad.c")], capture_output=True)
    assert r.returncode != 0


def test_cluster_versions_match_the_cluster_header(tmp_path: Path) -> None:
    """Every kernel the op table marks as having a PULP cluster version, lowered as the GAP9 lowering
    lowers it (mt_cl_* name; the tiled ones with their tile parameters, in f32 and f16), is declared so by
    the cluster layer's headers; the int8 forwards as mt_cl_*_s8."""
    from graphs import tiny_mlp

    from mcutrain.core.kernels import CLUSTER_TILED, STEP_KERNELS, Kernel
    from mcutrain.core.op_table import int8_kernels, op_kernels
    from mcutrain.emit.model_c import emit
    from mcutrain.emit.pulp import TILE_PARAMS
    from mcutrain.train.update_plan import LayerUpdate, UpdatePlan

    lowered = []
    for kn in [*op_kernels(), *STEP_KERNELS.values()]:
        if kn.cluster == CLUSTER_TILED:
            lowered += [Kernel(f"mt_cl_{kn.stem}_{t}", (*kn.params, *TILE_PARAMS)) for t in ("f32", "f16")]
        elif kn.cluster:
            lowered.append(Kernel(f"mt_cl_{kn.stem}_f32", kn.params))
    s8 = [Kernel(f"mt_cl_{kn.stem}_s8", (*kn.params, *TILE_PARAMS)) for kn in int8_kernels() if kn.cluster]
    assert {kn.name for kn in s8} == {"mt_cl_conv2d_fw_s8", "mt_cl_linear_fw_s8"}  # int8: their own tiles
    lowered += s8
    assert len(lowered) > 20
    g = tiny_mlp()  # a gap9 project supplies the generated mt_cluster_plan.h the headers include
    emit(g, UpdatePlan(g.name, g.fingerprint(), "t", (LayerUpdate.bias_only("fc2"),)), tmp_path, _gap9())
    inc = [tmp_path, tmp_path / "pulp", tmp_path / "pulp" / "pmsis_portable", INCLUDE]
    r = _redeclare(lowered, ["mt_cluster.h", "mt_cl_f16.h"], tmp_path, inc)
    assert r.returncode == 0, r.stderr


def _gap9():  # type: ignore[no-untyped-def]
    from mcutrain.boards.targets import load_target

    return load_target("gap9-rv32-qemu")
