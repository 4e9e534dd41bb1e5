"""The Cortex-M kernel set (firmware/runtime/cortexm) vs PyTorch autograd, on the host.

The library is built from the portable kernels and the Cortex-M ones with the golden tests' host flags;
there the register-blocked steps run as their C models (mt_cortexm_steps.c), so these tests check the
blocking, the lanes, the edge classes, the overlapping last blocks and the fallbacks; the steps' inline
assembly, and the elementwise kernels (plain portable calls on the host), are checked on the boards
(tests/emulator/test_kernel_check.py). Each ``mt_<op>_<pass>_cortexm_f32``
stands in for the portable ``mt_<op>_<pass>_f32`` and goes through the golden tests of test_conv.py and
test_dense.py (same checks, same tolerances) over the portable cases plus shapes that cross the kernels'
block boundaries. The same Cortex-M sources also build for Cortex-M4F, M7 and M55 with -Werror, and are
clang-formatted.
"""

from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .ckernels import (
    CM4F_FLAGS,
    HOST_FLAGS,
    INCLUDE,
    PROTOTYPES,
    REPO,
    RUNTIME,
    SOURCES,
    WARN_FLAGS,
    Kernels,
    abi_probe_source,
    ptr,
)
from .test_conv import (  # noqa: F401  (the golden tests, run here over the Cortex-M kernels)
    CONV2D_CASES,
    ConvCase,
    _Setup,
    test_bw_igrad,
    test_bw_wgrad,
    test_bw_wgrad_null_outputs,
    test_fw,
)
from .test_dense import LINEAR_CASES
from .test_dense import test_linear as _test_linear
from .test_elementwise import (  # noqa: F401  (over the Cortex-M activation kernels)
    test_activation_boundaries_exact,
    test_activation_bw_from_output,
    test_activation_fw,
    test_activation_propagates_nan_like_torch,
)
from .test_loss_optim import test_optimizer  # noqa: F401
from .test_pool_resample import test_max_pool2d  # noqa: F401

CORTEXM = RUNTIME / "cortexm"
#: portable kernel -> its Cortex-M version (what mt_cortexm_select.h selects)
SELECTED = {
    f"mt_{op}_{ps}_f32": f"mt_{op}_{ps}_cortexm_f32"
    for op in ("conv2d", "linear")
    for ps in ("fw", "bw_wgrad", "bw_igrad")
} | {
    f"mt_{name}_f32": f"mt_{name}_cortexm_f32"
    for name in ("sgd", "activation_fw", "activation_bw", "max_pool2d_fw", "max_pool2d_bw_igrad")
}
#: Cortex-M targets of the set: CPU flags (the portable M4F flags with the CPU swapped).
CPUS = {
    "cortex-m4": CM4F_FLAGS,
    "cortex-m7": ["-mcpu=cortex-m7", "-mfpu=fpv5-d16", *CM4F_FLAGS[2:]],
    "cortex-m55": ["-mcpu=cortex-m55", *CM4F_FLAGS[2:]],
}

# fmt: off
CM_CASES = [
    # widths 4k + r (the last block overlaps), width below 4, 5 and 6 channels (partial lane blocks)
    ConvCase("cm_3x3_same_w6", (5, 5, 6), 6, (3, 3), padding=(1, 1, 1, 1), ranges=((0, 5), (5, 6)), seed=41),
    ConvCase("cm_3x3_valid_w3", (6, 5, 5), 5, (3, 3), seed=42),
    ConvCase("cm_3x3_same_w2", (3, 4, 2), 4, (3, 3), padding=(1, 1, 1, 1), seed=43),
    # stride 2: TFLite "same" (pad right), PyTorch (pad 1 both sides), odd width
    ConvCase("cm_s2_tf_same", (4, 16, 16), 8, (3, 3), (2, 2), (0, 1, 0, 1), ranges=((0, 3), (3, 8)), seed=44),
    ConvCase("cm_s2_pad1_odd", (6, 9, 11), 5, (3, 3), (2, 2), (1, 1, 1, 1), seed=45),
    ConvCase("cm_s2_pad_left_only", (5, 8, 13), 4, (3, 3), (2, 2), (2, 0, 1, 0), seed=46),
    # padding beyond one column (COPY blocks), kernel 5x3, vertical stride and dilation
    ConvCase("cm_pad2", (4, 6, 9), 4, (3, 3), padding=(2, 2, 2, 2), seed=47),
    ConvCase("cm_k5x3_dil_h", (3, 12, 10), 6, (5, 3), (2, 1), (1, 2, 1, 1), (2, 1), seed=48),
    # 1-wide kernels: pointwise, strided shortcut, a padded 3x1
    ConvCase("cm_1x1_s1", (9, 5, 7), 7, (1, 1), ranges=((0, 4), (4, 7)), seed=49),
    ConvCase("cm_1x1_s2", (6, 8, 10), 8, (1, 1), (2, 2), seed=50),
    ConvCase("cm_3x1_pad", (4, 7, 6), 5, (3, 1), padding=(1, 1, 1, 1), seed=51),
    # groups: 2 and 6 channels per group, a range across a group boundary
    ConvCase("cm_groups2", (8, 6, 9), 12, (3, 3), padding=(1, 1, 1, 1), groups=2, ranges=((0, 5), (5, 12)),
             seed=52),
    ConvCase("cm_depth_mult2", (4, 6, 8), 8, (3, 3), padding=(1, 1, 1, 1), groups=4, seed=53),
    # the hand-posture CNN's convolution and a ResNet-8 block (widths 8 and 32)
    ConvCase("cm_handposture", (2, 8, 8), 8, (3, 3), seed=54),
    ConvCase("cm_resnet_8x8", (16, 8, 8), 16, (3, 3), padding=(1, 1, 1, 1), ranges=((0, 4), (4, 16)),
             seed=55),
    ConvCase("cm_resnet_32", (3, 32, 32), 16, (3, 3), padding=(1, 1, 1, 1), seed=56),
]

CM_LINEAR_CASES = [
    ("72to32", 72, 32, ((0, 32),), 21),
    ("32to8_split", 32, 8, ((0, 4), (4, 6), (6, 8)), 22),
    ("13to6", 13, 6, ((0, 6),), 23),
]
# fmt: on


def build_cortexm(out_dir: Path) -> Path:
    """The portable kernels and the Cortex-M kernel set (steps as C) in one host library."""
    probe = out_dir / "abi_probe.c"
    probe.write_text(abi_probe_source())
    lib = out_dir / "libmt_cortexm_kernels.so"
    srcs = [*SOURCES, *sorted(CORTEXM.glob("*.c")), probe]
    cmd = ["gcc", *HOST_FLAGS, f"-I{INCLUDE}", *map(str, srcs), "-o", str(lib), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building the Cortex-M kernel library failed:\n{' '.join(cmd)}\n{res.stderr}")
    return lib


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Kernels:
    """The Cortex-M kernels under the portable names, so that the golden tests call them."""
    k = Kernels(build_cortexm(tmp_path_factory.mktemp("mt_cortexm")))
    for name, cm in SELECTED.items():
        fn = getattr(k.lib, cm)
        fn.restype, fn.argtypes = PROTOTYPES[name]
        setattr(k, name, fn)
    return k


CASES = CONV2D_CASES + CM_CASES


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def setup(request, kernels) -> _Setup:
    return _Setup(kernels, request.param, transposed=False)


@pytest.mark.parametrize(
    "name,nin,nout,ranges,seed",
    LINEAR_CASES + CM_LINEAR_CASES,
    ids=[c[0] for c in LINEAR_CASES + CM_LINEAR_CASES],
)
def test_linear(kernels, name, nin, nout, ranges, seed):
    _test_linear(kernels, name, nin, nout, ranges, seed)


def test_cortexm_kernels_are_the_ones_tested(kernels: Kernels) -> None:
    """The golden tests above call the Cortex-M entry points: every one that mt_cortexm_select.h selects."""
    select = (CORTEXM / "mt_cortexm_select.h").read_text()
    assert dict(re.findall(r"#define (mt_\w+_f32)\s+(mt_\w+_cortexm_f32)", select)) == SELECTED
    for name, cm in SELECTED.items():
        addr = C.cast(getattr(kernels.lib, cm), C.c_void_p).value
        assert C.cast(getattr(kernels, name), C.c_void_p).value == addr
        assert C.cast(getattr(kernels.lib, name), C.c_void_p).value != addr


def test_forward_is_the_portable_floats(kernels: Kernels) -> None:
    """The blocked forward sums in the portable kernel's order: bit for bit the same outputs."""
    portable = Kernels(Path(kernels.lib._name))
    for case in (CM_CASES[0], CM_CASES[3], CM_CASES[13]):
        s = _Setup(kernels, case, transposed=False)
        ys = []
        for fn in (kernels.mt_conv2d_fw_f32, portable.mt_conv2d_fw_f32):
            y = np.full(s.out_shape, np.nan, np.float32)
            fn(s.dims, 0, case.out_c, ptr(s.x), ptr(s.w), ptr(s.b), ptr(y), None)
            ys.append(y)
        assert np.array_equal(ys[0], ys[1]), case.name


@pytest.mark.parametrize("cpu", list(CPUS))
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not on PATH")
def test_cortex_m_build(tmp_path: Path, cpu: str) -> None:
    """The set builds with -Werror for each Cortex-M CPU, its steps as VMLA.F32 (never the fused VFMA)."""
    for src in sorted(CORTEXM.glob("*.c")):
        obj = tmp_path / (src.stem + ".o")
        cmd = [
            "arm-none-eabi-gcc",
            *CPUS[cpu],
            "-ffp-contract=off",
            f"-I{INCLUDE}",
            "-c",
            str(src),
            "-o",
            str(obj),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
    dis = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(tmp_path / "mt_cortexm_conv2d.o")], capture_output=True, text=True
    ).stdout
    assert "vmla.f32" in dis and "vfma" not in dis


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not on PATH")
def test_clang_build(tmp_path: Path) -> None:
    for src in sorted(CORTEXM.glob("*.c")):
        cmd = [
            "clang",
            "-O1",
            *WARN_FLAGS,
            "-Wpedantic",
            f"-I{INCLUDE}",
            "-c",
            str(src),
            "-o",
            str(tmp_path / "o.o"),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"


@pytest.mark.skipif(shutil.which("clang-format") is None, reason="clang-format is not on PATH")
def test_clang_format() -> None:
    files = sorted(CORTEXM.glob("*.[ch]"))
    res = subprocess.run(
        ["clang-format", f"--style=file:{REPO / '.clang-format'}", "--dry-run", "-Werror", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, f"run clang-format -i on firmware/runtime/cortexm:\n{res.stderr[:2000]}"
