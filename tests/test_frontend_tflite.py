"""TFLite frontend: golden tests against LiteRT on the real models and on small hand-built models,
parameter counts, JSON round trips, and the errors users can cause."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import torch
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.schema_py_generated import BuiltinOperator as BO
from ai_edge_litert.schema_py_generated import BuiltinOptions as BOpt
from ai_edge_litert.schema_py_generated import TensorType as TT
from conftest import MODELS

from mcutrain.core import ir, semantics
from mcutrain.core.quant import dequantize
from mcutrain.frontends import FrontendError, load_model
from mcutrain.frontends.tflite import load_tflite
from mcutrain.frontends.tflite_file import layer_name

# ---------------------------------------------------------------------------------------------------
# Shared data (real models)
# ---------------------------------------------------------------------------------------------------


RESNET8 = "mlperf_tiny_resnet8_cifar10_float.tflite"
HANDPOSTURE = "st_handposture_vl53l5cx_cnn2d_float.tflite"
HAR = "st_har_gmp_wisdm_float.tflite"
HELLO = "tflm_hello_world_float.tflite"


def _model_path(name: str) -> Path:
    p = MODELS / name
    if not p.is_file():
        pytest.skip(f"real model {p} not found: shared data absent (set MCUTRAIN_SHARED_DATA to its folder)")
    return p


def _resnet_input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, shape).astype(np.float32)  # raw pixels, no /255


def _handposture_input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    dist = rng.uniform(100, 600, shape[:3])
    signal = rng.uniform(0, 3000, shape[:3])
    background = rng.random(shape[:3]) < 0.3
    dist[background], signal[background] = 4000.0, 0.0
    return np.stack([(dist - 295) / 196, (signal - 281) / 452], axis=-1).astype(np.float32)


def _har_input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(0.0, 6.0, shape).astype(np.float32)  # accelerometer, m/s^2


def _hello_input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.0, 2 * np.pi, shape).astype(np.float32)


REAL = {
    RESNET8: (_resnet_input, 77_706),
    HANDPOSTURE: (_handposture_input, 2_752),
    HAR: (_har_input, None),  # count not published; checked against the file's weights below
    HELLO: (_hello_input, 321),
}

# ---------------------------------------------------------------------------------------------------
# LiteRT reference and comparison
# ---------------------------------------------------------------------------------------------------


def _litert(path: Path, x: np.ndarray) -> tuple[np.ndarray, Interpreter]:
    with warnings.catch_warnings():  # preserving all tensors (to read the logits) is meant for debugging
        warnings.simplefilter("ignore", UserWarning)
        it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]), it


def _to_ir(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x)
    return t.permute(0, 3, 1, 2).contiguous() if x.ndim == 4 else t


def _from_ir(y: torch.Tensor) -> np.ndarray:
    return (y.permute(0, 2, 3, 1) if y.dim() == 4 else y).numpy()


def _assert_close(got: np.ndarray, ref: np.ndarray, rtol: float = 1e-5) -> None:
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=1e-6 * float(np.abs(ref).max()) + 1e-30)


def _softmax_input(path: Path) -> int | None:
    """TFLite tensor index of the final SOFTMAX's input (the logits), if the model ends in one."""
    m = tfl.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    sg = m.subgraphs[0]
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == BO.SOFTMAX and op.outputs[0] == sg.outputs[0]:
            return int(op.inputs[0])
    return None


# ---------------------------------------------------------------------------------------------------
# Real models
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_model_matches_litert(name: str) -> None:
    path = _model_path(name)
    make_input, _ = REAL[name]
    graph = load_tflite(path)
    logits_t = _softmax_input(path)
    rng = np.random.default_rng(1234)
    shape = tuple(Interpreter(model_path=str(path)).get_input_details()[0]["shape"])
    for _ in range(3):
        x = make_input(rng, shape)
        ref, it = _litert(path, x)
        env = semantics.run_graph(graph, _to_ir(x), keep=True)
        _assert_close(_from_ir(env[graph.outputs[0]]), ref)
        if logits_t is not None:  # probabilities saturate: also compare the logits
            softmax = graph.node(graph.outputs[0])
            assert isinstance(softmax.op, ir.Softmax)
            _assert_close(_from_ir(env[softmax.inputs[0]]), it.get_tensor(logits_t))


def _file_param_count(path: Path) -> int:
    """Float elements of the constant tensors read by the model's ops (weights and biases)."""
    m = tfl.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    sg = m.subgraphs[0]
    used = {int(i) for op in sg.operators for i in op.inputs if i >= 0}
    return sum(
        int(np.prod(sg.tensors[i].shape))
        for i in used
        if sg.tensors[i].type == TT.FLOAT32 and m.buffers[sg.tensors[i].buffer].data is not None
    )


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_model_params_and_json_roundtrip(name: str) -> None:
    path = _model_path(name)
    graph = load_tflite(path)
    expected = REAL[name][1]
    assert graph.num_params() == (expected if expected is not None else _file_param_count(path))
    assert graph.num_params() == _file_param_count(path)
    back = ir.Graph.from_json(graph.to_json())
    assert back.fingerprint() == graph.fingerprint()
    assert load_model(str(path)).fingerprint() == graph.fingerprint()


def test_real_model_structure_and_names() -> None:
    resnet = load_tflite(_model_path(RESNET8))
    assert resnet.inputs == (("input_1", (3, 32, 32)),)
    kinds = [n.op.kind for n in resnet.nodes]
    assert kinds.count("conv2d") == 9 and kinds.count("add") == 3 and kinds[-1] == "softmax"
    assert resnet.node("conv2d_1").op == ir.Conv2d(16, (3, 3), (1, 1), (1, 1, 1, 1))
    assert resnet.node("conv2d_1_relu").op == ir.Activation(ir.ActFn.RELU)
    assert resnet.param("conv2d", "weight").shape == (16, 3, 3, 3)
    assert resnet.node("average_pooling2d").op.count_include_pad is False

    hand = load_tflite(_model_path(HANDPOSTURE))
    # SHAPE / STRIDED_SLICE / PACK computing the flatten target are gone
    assert [n.op.kind for n in hand.nodes] == [
        "conv2d",
        "activation",
        "max_pool2d",
        "reshape",
        "linear",
        "activation",
        "linear",
        "softmax",
    ]
    assert hand.inputs == (("input_1", (2, 8, 8)),)
    assert hand.shapes["flatten_1"] == (72,)


# ---------------------------------------------------------------------------------------------------
# Hand-built models (flatbuffers object API), checked against LiteRT
# ---------------------------------------------------------------------------------------------------


class TinyModel:
    """A small float32 TFLite model written with the flatbuffers object API."""

    def __init__(self) -> None:
        self.tensors: list[tfl.TensorT] = []
        self.buffers: list[tfl.BufferT] = [tfl.BufferT()]
        self.ops: list[tfl.OperatorT] = []
        self.codes: list[int] = []
        self.rng = np.random.default_rng(7)

    def tensor(
        self, name: str, shape: tuple[int, ...], data: np.ndarray | None = None, ttype: int = TT.FLOAT32
    ) -> int:
        t = tfl.TensorT()
        t.name, t.shape, t.type = name.encode(), list(shape), ttype
        buf = tfl.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        self.buffers.append(buf)
        t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, array: np.ndarray) -> int:
        ttype = {np.float32: TT.FLOAT32, np.float16: TT.FLOAT16, np.int32: TT.INT32}[array.dtype.type]
        return self.tensor(name, array.shape, array, ttype)

    def weights(self, name: str, *shape: int) -> int:
        return self.const(name, self.rng.normal(0, 0.5, shape).astype(np.float32))

    def op(
        self,
        code: int,
        inputs: list[int],
        out: tuple[str, tuple[int, ...]],
        opt_type: int = 0,
        options: object = None,
    ) -> int:
        if code not in self.codes:
            self.codes.append(code)
        o = tfl.OperatorT()
        o.opcodeIndex, o.inputs = self.codes.index(code), inputs
        o.outputs = [self.tensor(*out)]
        o.builtinOptionsType, o.builtinOptions = opt_type, options
        self.ops.append(o)
        return o.outputs[0]

    def build(self, inputs: list[int], outputs: list[int]) -> bytes:
        sg = tfl.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators = self.tensors, inputs, outputs, self.ops
        m = tfl.ModelT()
        m.version, m.subgraphs, m.buffers, m.description = 3, [sg], self.buffers, b"mcutrain test"
        m.operatorCodes = []
        for c in self.codes:
            oc = tfl.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            m.operatorCodes.append(oc)
        return _pack(m)


def _pack(m: tfl.ModelT) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _options(cls: type, **fields: object) -> object:
    o = cls()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


def _conv(
    m: TinyModel,
    x: int,
    cin: int,
    cout: int,
    out: tuple[int, ...],
    k: int = 3,
    stride: int = 1,
    same: bool = True,
    act: int = 0,
    dil: int = 1,
    name: str = "conv",
) -> int:
    w, b = m.weights(f"{name}/w", cout, k, k, cin), m.weights(f"{name}/b", cout)
    opts = _options(
        tfl.Conv2DOptionsT,
        padding=0 if same else 1,
        strideH=stride,
        strideW=stride,
        fusedActivationFunction=act,
        dilationHFactor=dil,
        dilationWFactor=dil,
    )
    return m.op(BO.CONV_2D, [x, w, b], (f"model/{name}/Conv2D", out), BOpt.Conv2DOptions, opts)


def _case_conv() -> tuple[bytes, tuple[int, ...]]:
    m = TinyModel()
    x = m.tensor("serving_default_image:0", (1, 10, 9, 3))
    y = _conv(m, x, 3, 4, (1, 5, 5, 4), stride=2, act=3, name="conv_s2")  # asymmetric SAME pad, RELU6
    y = _conv(m, y, 4, 5, (1, 5, 5, 5), dil=2, name="conv_dil")
    y = _conv(m, y, 5, 4, (1, 3, 3, 4), same=False, act=1, name="conv_valid")
    return m.build([x], [y]), (1, 10, 9, 3)


def _case_depthwise() -> tuple[bytes, tuple[int, ...]]:
    m = TinyModel()
    x = m.tensor("input", (1, 7, 8, 3))
    w, b = m.weights("dw/w", 1, 3, 3, 6), m.weights("dw/b", 6)
    opts = _options(
        tfl.DepthwiseConv2DOptionsT,
        padding=0,
        strideH=2,
        strideW=2,
        depthMultiplier=2,
        fusedActivationFunction=1,
        dilationHFactor=1,
        dilationWFactor=1,
    )
    y = m.op(
        BO.DEPTHWISE_CONV_2D,
        [x, w, b],
        ("model/dw/depthwise", (1, 4, 4, 6)),
        BOpt.DepthwiseConv2DOptions,
        opts,
    )
    return m.build([x], [y]), (1, 7, 8, 3)


def _transpose_conv(
    m: TinyModel, x: int, cin: int, cout: int, k: int, out: tuple[int, ...], same: bool, name: str
) -> int:
    shape = m.const(f"{name}/shape", np.array(out, np.int32))
    w, b = m.weights(f"{name}/w", cout, k, k, cin), m.weights(f"{name}/b", cout)
    opts = _options(tfl.TransposeConvOptionsT, padding=0 if same else 1, strideH=2, strideW=2)
    return m.op(
        BO.TRANSPOSE_CONV,
        [shape, w, x, b],
        (f"model/{name}/conv2d_transpose", out),
        BOpt.TransposeConvOptions,
        opts,
    )


def _case_transpose_conv() -> tuple[bytes, tuple[int, ...]]:
    m = TinyModel()
    x = m.tensor("input", (1, 4, 5, 3))
    y = _transpose_conv(m, x, 3, 4, 3, (1, 8, 10, 4), True, "up_same")
    y = _transpose_conv(m, y, 4, 2, 4, (1, 16, 20, 2), True, "up_same_k4")
    y = _transpose_conv(m, y, 2, 2, 3, (1, 33, 41, 2), False, "up_valid")
    return m.build([x], [y]), (1, 4, 5, 3)


def _pool(m: TinyModel, code: int, x: int, k: int, s: int, out: tuple[int, ...], name: str) -> int:
    opts = _options(tfl.Pool2DOptionsT, padding=0, strideH=s, strideW=s, filterHeight=k, filterWidth=k)
    return m.op(code, [x], (f"model/{name}/pool", out), BOpt.Pool2DOptions, opts)


def _case_pools_mean() -> tuple[bytes, tuple[int, ...]]:
    m = TinyModel()
    x = m.tensor("input", (1, 7, 7, 3))
    y = _pool(m, BO.AVERAGE_POOL_2D, x, 3, 1, (1, 7, 7, 3), "avg")  # border windows average fewer pixels
    y = _pool(m, BO.MAX_POOL_2D, y, 2, 2, (1, 4, 4, 3), "max")
    axes = m.const("axes", np.array([1, 2], np.int32))
    y = m.op(
        BO.MEAN,
        [y, axes],
        ("model/gap/Mean", (1, 1, 1, 3)),
        BOpt.ReducerOptions,
        _options(tfl.ReducerOptionsT, keepDims=True),
    )
    w, b = m.weights("fc/w", 5, 3), m.weights("fc/b", 5)
    y = m.op(
        BO.FULLY_CONNECTED,
        [y, w, b],
        ("model/fc/MatMul", (1, 5)),
        BOpt.FullyConnectedOptions,
        _options(tfl.FullyConnectedOptionsT, fusedActivationFunction=1),
    )
    y = m.op(BO.SOFTMAX, [y], ("probs", (1, 5)), BOpt.SoftmaxOptions, _options(tfl.SoftmaxOptionsT, beta=1.0))
    return m.build([x], [y]), (1, 7, 7, 3)


def _case_concat_add_activations() -> tuple[bytes, tuple[int, ...]]:
    m = TinyModel()
    x = m.tensor("input", (1, 6, 6, 2))
    a = _conv(m, x, 2, 3, (1, 6, 6, 3), name="branch_a")
    b = _conv(m, x, 2, 2, (1, 6, 6, 2), k=1, name="branch_b")
    cat = m.op(
        BO.CONCATENATION,
        [a, b],
        ("model/concat/concat", (1, 6, 6, 5)),
        BOpt.ConcatenationOptions,
        _options(tfl.ConcatenationOptionsT, axis=-1, fusedActivationFunction=0),
    )
    c = _conv(m, x, 2, 5, (1, 6, 6, 5), name="branch_c")
    y = m.op(
        BO.ADD,
        [cat, c],
        ("model/add/add", (1, 6, 6, 5)),
        BOpt.AddOptions,
        _options(tfl.AddOptionsT, fusedActivationFunction=3),
    )
    y = m.op(
        BO.LEAKY_RELU,
        [y],
        ("model/lrelu/LeakyRelu", (1, 6, 6, 5)),
        BOpt.LeakyReluOptions,
        _options(tfl.LeakyReluOptionsT, alpha=0.2),
    )
    for code, name in ((BO.RELU, "relu"), (BO.TANH, "tanh"), (BO.RELU6, "relu6"), (BO.LOGISTIC, "sigmoid")):
        y = m.op(code, [y], (f"model/{name}/act", (1, 6, 6, 5)))
    return m.build([x], [y]), (1, 6, 6, 2)


def _case_pad_resize() -> tuple[bytes, tuple[int, ...]]:
    m = TinyModel()
    x = m.tensor("input", (1, 3, 4, 2))
    pads = m.const("pads", np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32))
    y = m.op(BO.PAD, [x, pads], ("model/pad/Pad", (1, 6, 5, 2)))
    pads2 = m.const("pads2", np.array([[0, 0], [1, 0], [2, 1], [0, 0]], np.int32))
    y = m.op(
        BO.PADV2,
        [y, pads2, m.const("value", np.array([-1.5], np.float32))],
        ("model/pad2/PadV2", (1, 7, 8, 2)),
    )
    for i, (align, half) in enumerate(((False, False), (False, True))):
        size = m.const(f"size{i}", np.array([7 * 2 ** (i + 1), 8 * 2 ** (i + 1)], np.int32))
        y = m.op(
            BO.RESIZE_NEAREST_NEIGHBOR,
            [y, size],
            (f"model/up_nn{i}/resize", (1, 7 * 2 ** (i + 1), 8 * 2 ** (i + 1), 2)),
            BOpt.ResizeNearestNeighborOptions,
            _options(tfl.ResizeNearestNeighborOptionsT, alignCorners=align, halfPixelCenters=half),
        )
    y = _pool(m, BO.MAX_POOL_2D, y, 4, 4, (1, 7, 8, 2), "down")
    for i, (align, half) in enumerate(((False, True), (True, False))):
        h, w = 7 * 3 ** (i + 1), 8 * 3 ** (i + 1)
        size = m.const(f"bsize{i}", np.array([h, w], np.int32))
        y = m.op(
            BO.RESIZE_BILINEAR,
            [y, size],
            (f"model/up_bl{i}/resize", (1, h, w, 2)),
            BOpt.ResizeBilinearOptions,
            _options(tfl.ResizeBilinearOptionsT, alignCorners=align, halfPixelCenters=half),
        )
    return m.build([x], [y]), (1, 3, 4, 2)


def _case_fp16_flatten_unflatten() -> tuple[bytes, tuple[int, ...]]:
    m = TinyModel()
    x = m.tensor("input", (1, 5, 5, 2))
    w16 = m.const("conv/w_fp16", m.rng.normal(0, 0.5, (4, 3, 3, 2)).astype(np.float16))
    w = m.op(BO.DEQUANTIZE, [w16], ("conv/w", (4, 3, 3, 2)))
    opts = _options(tfl.Conv2DOptionsT, padding=1, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1)
    y = m.op(
        BO.CONV_2D,
        [x, w, m.weights("conv/b", 4)],
        ("model/conv/Conv2D", (1, 3, 3, 4)),
        BOpt.Conv2DOptions,
        opts,
    )
    flat = m.op(
        BO.RESHAPE,
        [y, m.const("flat_shape", np.array([1, 36], np.int32))],
        ("model/flatten/Reshape", (1, 36)),
    )
    back = m.op(
        BO.RESHAPE,
        [flat, m.const("back_shape", np.array([1, 3, 3, 4], np.int32))],
        ("model/unflatten/Reshape", (1, 3, 3, 4)),
    )
    y = _conv(m, back, 4, 3, (1, 3, 3, 3), name="conv2")
    w2 = m.weights("fc/w", 6, 27)
    y = m.op(BO.FULLY_CONNECTED, [y, w2, -1], ("model/fc/MatMul", (1, 6)))  # implicit flatten, no bias
    return m.build([x], [y]), (1, 5, 5, 2)


CASES: dict[str, Callable[[], tuple[bytes, tuple[int, ...]]]] = {
    "conv": _case_conv,
    "depthwise": _case_depthwise,
    "transpose_conv": _case_transpose_conv,
    "pools_mean": _case_pools_mean,
    "concat_add_activations": _case_concat_add_activations,
    "pad_resize": _case_pad_resize,
    "fp16_flatten_unflatten": _case_fp16_flatten_unflatten,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiny_model_matches_litert(case: str, tmp_path: Path) -> None:
    blob, shape = CASES[case]()
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(blob)
    graph = load_tflite(path)
    rng = np.random.default_rng(99)
    for _ in range(2):
        x = rng.normal(0, 1, shape).astype(np.float32)
        ref, _ = _litert(path, x)
        _assert_close(_from_ir(semantics.forward(graph, _to_ir(x))), ref)


def test_tiny_model_layouts(tmp_path: Path) -> None:
    path = tmp_path / "conv.tflite"
    path.write_bytes(_case_conv()[0])
    g = load_tflite(path)
    assert g.inputs == (("image", (3, 10, 9)),)
    assert g.node("conv_s2").op.padding == (0, 1, 1, 1)  # TFLite puts the odd pixel after
    assert [n.name for n in g.nodes] == [
        "conv_s2",
        "conv_s2_relu6",
        "conv_dil",
        "conv_valid",
        "conv_valid_relu",
    ]

    path.write_bytes(_case_depthwise()[0])
    dw = load_tflite(path).node("dw")
    assert dw.op.groups == 3 and dw.op.out_channels == 6

    path.write_bytes(_case_transpose_conv()[0])
    g = load_tflite(path)
    assert g.param("up_same", "weight").shape == (3, 4, 3, 3)


@pytest.mark.parametrize(
    ("tensor_name", "expected"),
    [
        ("model/conv2d_1/Conv2D", "conv2d_1"),
        ("model/activation/Relu;model/batch_normalization/FusedBatchNormV3;model/conv2d/Conv2D1", "conv2d"),
        ("serving_default_input_1:0", "input_1"),
        ("StatefulPartitionedCall_1:0", None),
        ("Identity", None),
    ],
)
def test_layer_name(tensor_name: str, expected: str | None) -> None:
    assert layer_name(tensor_name) == expected


# ---------------------------------------------------------------------------------------------------
# Errors users can cause
# ---------------------------------------------------------------------------------------------------


def _load_error(tmp_path: Path, blob: bytes, name: str = "bad.tflite") -> str:
    path = tmp_path / name
    path.write_bytes(blob)
    with pytest.raises(FrontendError) as e:
        load_tflite(path)
    return str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FrontendError, match="does not exist"):
        load_tflite(tmp_path / "nope.tflite")
    with pytest.raises(FrontendError, match="does not exist"):
        load_model(str(tmp_path / "nope.tflite"))


def test_not_a_flatbuffer(tmp_path: Path) -> None:
    msg = _load_error(tmp_path, np.random.default_rng(0).bytes(4096))
    assert "not a TFLite flatbuffer" in msg and "TFL3" in msg
    assert "not a TFLite flatbuffer" in _load_error(tmp_path, b"")


def test_corrupt_with_identifier(tmp_path: Path) -> None:
    blob = b"\xff\xff\xff\x7fTFL3" + np.random.default_rng(1).bytes(4096)
    assert "truncated or corrupt" in _load_error(tmp_path, blob)


def test_truncated_real_model(tmp_path: Path) -> None:
    blob = _model_path(HANDPOSTURE).read_bytes()[:1000]
    msg = _load_error(tmp_path, blob)
    assert "truncated or corrupt" in msg and "bad.tflite" in msg


def _real_model_t(name: str) -> tfl.ModelT:
    return tfl.ModelT.InitFromPackedBuf(_model_path(name).read_bytes(), 0)


def _set_opcode(m: tfl.ModelT, op_index: int, code: int) -> None:
    oc = tfl.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
    m.operatorCodes.append(oc)
    m.subgraphs[0].operators[op_index].opcodeIndex = len(m.operatorCodes) - 1


@pytest.mark.parametrize(
    ("code", "op_name", "hint"),
    [(BO.MUL, "MUL", "fold the scale"), (BO.SUB, "SUB", "bias"), (BO.HARD_SWISH, "HARD_SWISH", "RELU6")],
)
def test_unsupported_op(tmp_path: Path, code: int, op_name: str, hint: str) -> None:
    m = _real_model_t(RESNET8)
    _set_opcode(m, 3, code)  # the first residual ADD
    msg = _load_error(tmp_path, _pack(m))
    assert f"#3 {op_name}" in msg and "not supported" in msg and hint in msg
    assert "model/activation_2/Relu;model/add/add" in msg  # names the output tensor


def test_unsupported_op_without_hint_lists_supported(tmp_path: Path) -> None:
    m = _real_model_t(HELLO)
    _set_opcode(m, 1, BO.EXP)
    msg = _load_error(tmp_path, _pack(m))
    assert "#1 EXP" in msg and "CONV_2D" in msg and "FULLY_CONNECTED" in msg


def test_int8_tensor_without_quantization(tmp_path: Path) -> None:
    m = _real_model_t(HANDPOSTURE)
    sg = m.subgraphs[0]
    for t in sg.tensors:
        if t.type == TT.FLOAT32:
            t.type = TT.INT8
    msg = _load_error(tmp_path, _pack(m))
    assert "int8 tensor" in msg and "has no quantization parameters" in msg


@pytest.mark.parametrize(("tt", "words"), [(TT.UINT8, "uint8 (legacy"), (TT.INT16, "int16 (16x8")])
def test_unsupported_integer_types_name_the_tensor(tmp_path: Path, tt: int, words: str) -> None:
    m = _real_model_t("mlperf_kws_dscnn_int8.tflite")
    sg = m.subgraphs[0]
    t = sg.tensors[int(sg.operators[2].outputs[0])]
    t.type = tt
    msg = _load_error(tmp_path, _pack(m))
    assert words in msg and t.name.decode()[:40] in msg


def test_int8_models_keep_their_quantization() -> None:
    """The four full-integer models of shared/ import with every tensor's quantization, their int8
    weights (per-channel scales along the IR's output-channel axis) and int32 biases exactly."""
    for name in (
        "tflm_hello_world_int8",
        "tflm_micro_speech_int8",
        "mlperf_kws_dscnn_int8",
        "mlperf_vww_mobilenetv1_int8",
    ):
        g = load_tflite(_model_path(f"{name}.tflite"))
        assert g.quantized
        for n in g.nodes:
            assert n.name in g.quant, (name, n.name)
            for p in n.op.param_names:
                key = n.param_key(p)
                q, v = g.quant[key], g.qvalues[key]
                assert v.dtype == np.dtype(q.dtype) and v.shape == g.params[key].shape
                if p == "weight":
                    assert len(q.scale) in (1, g.shapes[n.name][0]) and q.axis == 0
                    np.testing.assert_array_equal(g.params[key], dequantize(v, q))
        assert g.fingerprint() == load_tflite(_model_path(f"{name}.tflite")).fingerprint()


def test_multiple_subgraphs_and_inputs(tmp_path: Path) -> None:
    m = _real_model_t(HELLO)
    m.subgraphs.append(m.subgraphs[0])
    assert "2 subgraphs" in _load_error(tmp_path, _pack(m))
    m = _real_model_t(HELLO)
    sg = m.subgraphs[0]
    sg.inputs = [int(sg.inputs[0]), 7]
    assert "2 inputs" in _load_error(tmp_path, _pack(m))


def test_flatten_into_non_dense_is_rejected(tmp_path: Path) -> None:
    m = TinyModel()
    x = m.tensor("input", (1, 3, 3, 4))
    flat = m.op(
        BO.RESHAPE, [x, m.const("shape", np.array([1, 36], np.int32))], ("model/flatten/Reshape", (1, 36))
    )
    opts = _options(tfl.SoftmaxOptionsT, beta=1.0)
    y = m.op(BO.SOFTMAX, [flat], ("probs", (1, 36)), BOpt.SoftmaxOptions, opts)
    msg = _load_error(tmp_path, m.build([x], [y]))
    assert "SOFTMAX" in msg and "flattened NHWC" in msg and "FULLY_CONNECTED" in msg


def test_softmax_beta_and_legacy_bilinear(tmp_path: Path) -> None:
    m = TinyModel()
    x = m.tensor("input", (1, 4))
    y = m.op(BO.SOFTMAX, [x], ("probs", (1, 4)), BOpt.SoftmaxOptions, _options(tfl.SoftmaxOptionsT, beta=2.0))
    assert "beta=2.0" in _load_error(tmp_path, m.build([x], [y]))

    m = TinyModel()
    x = m.tensor("input", (1, 3, 3, 1))
    size = m.const("size", np.array([6, 6], np.int32))
    y = m.op(
        BO.RESIZE_BILINEAR,
        [x, size],
        ("up", (1, 6, 6, 1)),
        BOpt.ResizeBilinearOptions,
        _options(tfl.ResizeBilinearOptionsT, alignCorners=False, halfPixelCenters=False),
    )
    assert "half_pixel_centers=True" in _load_error(tmp_path, m.build([x], [y]))


def test_unknown_extension_goes_elsewhere(tmp_path: Path) -> None:
    with pytest.raises(FrontendError, match="cannot tell"):
        load_model(str(tmp_path / "model.onnx"))
