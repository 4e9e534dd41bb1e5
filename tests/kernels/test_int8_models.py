"""Every operator of the four real full-integer int8 models (../shared/data/models) is exact.

Each model runs in LiteRT with its reference kernels (BUILTIN_REF, every intermediate tensor kept) on
random int8 inputs; then every operator is fed its real quantized inputs and parameters, converted to
the IR layout, and its output from the NumPy semantics and from the C kernel must equal LiteRT's, bit
for bit.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tfl
from conftest import require_shared

from .int8_tflite import adapt, chw, run_c, run_numpy
from .s8kernels import S8Kernels
from .tflite_builder import interpreter

MODELS = {
    "tflm_hello_world_int8": 3,
    "tflm_micro_speech_int8": 4,
    "mlperf_kws_dscnn_int8": 13,
    "mlperf_vww_mobilenetv1_int8": 31,
}
SEEDS = (0, 1)  # 0: uniform random int8; 1: a smooth random field (closer to images and spectrograms)


def _input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if seed == 0:
        return rng.integers(-128, 128, shape, dtype=np.int8)
    v = rng.standard_normal(shape)
    for axis in range(1, len(shape) - (len(shape) == 4)):  # integrate along H, W (or the flat axis)
        v = np.cumsum(v, axis=axis)
    v = (v - v.min()) / max(float(v.max() - v.min()), 1e-9)
    return np.round(v * 255 - 128).astype(np.int8)


@pytest.fixture(scope="module")
def s8(kernels) -> S8Kernels:  # type: ignore[no-untyped-def]
    return S8Kernels(kernels.lib)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_op_of_a_real_int8_model_is_exact(name: str, s8: S8Kernels) -> None:
    data = require_shared("models", f"{name}.tflite").read_bytes()
    model = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(data, 0))
    n_ops = len(model.subgraphs[0].operators)
    assert n_ops == MODELS[name]
    it = interpreter(data, preserve_all=True)
    inp = it.get_input_details()[0]
    kinds: Counter[str] = Counter()
    for seed in SEEDS:
        it.set_tensor(inp["index"], _input(tuple(int(v) for v in inp["shape"]), seed))
        it.invoke()
        for i, op in enumerate(model.subgraphs[0].operators):
            case = adapt(model, i, it.get_tensor)
            want = chw(it.get_tensor(op.outputs[0])).reshape(case.out_shape)
            got_np, got_c = run_numpy(case), run_c(s8, case)
            assert got_np.dtype == want.dtype and np.array_equal(got_np, want), (
                f"{name} op {case.name} (seed {seed}): NumPy differs from LiteRT in "
                f"{int(np.sum(got_np != want))}/{want.size} values"
            )
            assert np.array_equal(got_c, want), (
                f"{name} op {case.name} (seed {seed}): C differs from LiteRT in "
                f"{int(np.sum(got_c != want))}/{want.size} values"
            )
            kinds[case.kind] += 1
    assert sum(kinds.values()) == n_ops * len(SEEDS)
