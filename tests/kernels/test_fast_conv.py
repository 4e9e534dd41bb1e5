"""The fast host conv2d kernels (firmware/runtime/host) vs PyTorch autograd, over output-channel ranges.

The library is built like a generated project's fast flavour (runtime/host with ``-O3 -march=native``,
the portable kernels as in the portable golden tests); its ``mt_conv2d_*_fast_f32`` functions stand in
for the portable ``mt_conv2d_*_f32`` and go through the golden tests of test_conv.py (same checks, same
tolerances) over the portable cases plus shapes that cross the fast kernels' tile boundaries. The vector
paths of other machines (AVX2 + FMA, 8 lanes; plain x86-64, 4 lanes without FMA) run the tile-boundary
cases too. The sources must also be clang-formatted.
"""

from __future__ import annotations

import ctypes as C
import shutil
import subprocess
from pathlib import Path

import pytest

from .ckernels import (
    HOST_FLAGS,
    INCLUDE,
    PROTOTYPES,
    RUNTIME,
    SOURCES,
    WARN_FLAGS,
    Kernels,
    abi_probe_source,
)
from .test_conv import (  # noqa: F401  (the golden tests, run here over the fast kernels)
    CONV2D_CASES,
    ConvCase,
    _Setup,
    test_bw_igrad,
    test_bw_wgrad,
    test_bw_wgrad_null_outputs,
    test_fw,
)

HOST = RUNTIME / "host"
#: Flags of the fast kernels in a generated project's fast flavour (codegen/Makefile.host.j2); the portable
#: kernels they fall back to are built as in the portable golden tests.
FAST_FLAGS = ["-O3", "-ffp-contract=off", *WARN_FLAGS, "-fPIC"]
#: Instruction sets: this machine's, and the two narrower vector paths of the kernels.
ISAS = {"native": ["-march=native"], "avx2": ["-mavx2", "-mfma"], "x86-64": ["-march=x86-64"]}
PASSES = ("fw", "bw_wgrad", "bw_igrad")

# fmt: off
FAST_CASES = [
    # ResNet-like blocks at odd sizes: pixel tails of every vector width, channel tails of every tile
    ConvCase("fast_3x3_odd_ranges", (16, 13, 11), 23, (3, 3), padding=(1, 1, 1, 1),
             ranges=((0, 5), (5, 6), (6, 23)), seed=31),
    ConvCase("fast_s2_tflite_same", (12, 17, 15), 20, (3, 3), (2, 2), (0, 1, 0, 1), seed=32),
    ConvCase("fast_1x1_s2_shortcut", (9, 15, 16), 13, (1, 1), (2, 2), ranges=((0, 7), (7, 13)), seed=33),
    # more pixels than one tile holds, more taps than one tile holds
    ConvCase("fast_many_pixels", (3, 41, 37), 5, (3, 3), padding=(1, 1, 1, 1), seed=34),
    ConvCase("fast_many_taps", (75, 6, 7), 9, (3, 3), padding=(1, 1, 1, 1), ranges=((0, 4), (4, 9)), seed=35),
    ConvCase("fast_groups3_dilated", (9, 12, 10), 6, (3, 3), padding=(2, 2, 2, 2), dilation=(2, 2), groups=3,
             ranges=((0, 1), (1, 6)), seed=36),
]
# fmt: on


def build_fast(out_dir: Path, isa: list[str]) -> Path:
    """Every portable kernel (HOST_FLAGS) plus the fast host kernels (FAST_FLAGS + isa) in one library."""
    probe = out_dir / "abi_probe.c"
    probe.write_text(abi_probe_source())
    objs = [out_dir / f"{src.stem}.o" for src in sorted(HOST.glob("*.c"))]
    lib = out_dir / "libmt_fast_kernels.so"
    cmds = [
        ["gcc", *FAST_FLAGS, *isa, f"-I{INCLUDE}", "-c", str(src), "-o", str(obj)]
        for src, obj in zip(sorted(HOST.glob("*.c")), objs, strict=True)
    ]
    cmds.append(
        ["gcc", *HOST_FLAGS, f"-I{INCLUDE}", *map(str, [*SOURCES, probe, *objs]), "-o", str(lib), "-lm"]
    )
    for cmd in cmds:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"building the fast kernel library failed:\n{' '.join(cmd)}\n{res.stderr}")
    return lib


def _fast_kernels(out_dir: Path, isa: list[str]) -> Kernels:
    """The fast kernels under the portable names, so that the golden tests of test_conv.py call them."""
    k = Kernels(build_fast(out_dir, isa))
    for ps in PASSES:
        fn = getattr(k.lib, f"mt_conv2d_{ps}_fast_f32")
        fn.restype, fn.argtypes = PROTOTYPES[f"mt_conv2d_{ps}_f32"]
        setattr(k, f"mt_conv2d_{ps}_f32", fn)
    return k


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":")[1].split()}


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory):
    """isa name -> its Kernels, built on first use."""
    built: dict[str, Kernels] = {}

    def get(isa: str) -> Kernels:
        if isa == "avx2" and not {"avx2", "fma"} <= _cpu_flags():
            pytest.skip("this CPU cannot run AVX2 + FMA code")
        if isa not in built:
            built[isa] = _fast_kernels(tmp_path_factory.mktemp(f"mt_fast_{isa}"), ISAS[isa])
        return built[isa]

    return get


@pytest.fixture
def kernels(libraries) -> Kernels:
    return libraries("native")


PARAMS = [("native", c) for c in CONV2D_CASES + FAST_CASES] + [
    (isa, c) for isa in ISAS if isa != "native" for c in FAST_CASES
]


@pytest.fixture(params=PARAMS, ids=[f"{isa}-{c.name}" for isa, c in PARAMS])
def setup(request, libraries) -> _Setup:
    isa, case = request.param
    return _Setup(libraries(isa), case, transposed=False)


def test_fast_kernels_are_the_ones_tested(kernels: Kernels) -> None:
    """The golden tests above really call the fast entry points, and they need no scratch."""
    for ps in PASSES:
        fast = C.cast(getattr(kernels.lib, f"mt_conv2d_{ps}_fast_f32"), C.c_void_p).value
        assert C.cast(getattr(kernels, f"mt_conv2d_{ps}_f32"), C.c_void_p).value == fast
        assert C.cast(getattr(kernels.lib, f"mt_conv2d_{ps}_f32"), C.c_void_p).value != fast
    dims = kernels.dims(
        "mt_conv2d_dims_t",
        **dict.fromkeys(["in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "kernel_h", "kernel_w"], 3),
        **dict.fromkeys(["stride_h", "stride_w", "dilation_h", "dilation_w", "groups"], 1),
        pad_top=1,
        pad_left=1,
    )
    assert all(getattr(kernels, f"mt_conv2d_{ps}_scratch_bytes")(dims) == 0 for ps in PASSES)


@pytest.mark.skipif(shutil.which("clang-format") is None, reason="clang-format is not on PATH")
def test_clang_format() -> None:
    files = sorted(HOST.glob("*.[ch]"))
    res = subprocess.run(
        [
            "clang-format",
            f"--style=file:{RUNTIME.parents[1] / '.clang-format'}",
            "--dry-run",
            "-Werror",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, f"run clang-format -i on firmware/runtime/host:\n{res.stderr[:2000]}"
