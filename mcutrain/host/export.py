"""Export fine-tuned parameters back into the source model's format (docs/export.md).

``mcutrain pull`` gives the device's trainable values as one flat vector in the device's export order.
:func:`merge_params` checks that vector against the plan and the model and merges it into the full IR
parameter dict. :func:`export_tflite` writes a copy of the source ``.tflite`` whose weight buffers hold
the new values (every other byte unchanged); :func:`torch_state_dict` gives a ``state_dict`` for the
source ``nn.Module``, with batch norms un-folded (their statistics kept, the conv weight and the batch
norm's ``beta`` solved for).

Where each IR parameter comes from is not re-derived here: :func:`trace_sources` runs the frontend itself
on the source tensors filled with element ids, so every layout change the frontend makes (NHWC -> CHW,
depthwise and flatten permutations, shared buffers) is read off its output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mcutrain.core import ir
from mcutrain.emit.link_app import plan_summary
from mcutrain.train.plan_file import read_plan
from mcutrain.train.trainable import unflatten_params
from mcutrain.train.update_plan import Update, UpdatePlan

if TYPE_CHECKING:
    pass

Params = dict[str, np.ndarray]
FOLDABLE = (ir.Conv2d, ir.ConvTranspose2d, ir.Linear)


class ExportError(ValueError):
    """Parameters that cannot be exported, with a message meant for the user."""


@dataclass(frozen=True)
class Pulled:
    """The content of ``mcutrain pull``'s ``.npz``: the flat vector and what the device said it runs."""

    params: np.ndarray
    model_hash: str | None = None
    plan: str | None = None
    step: int | None = None

    @staticmethod
    def load(path: str | Path) -> Pulled:
        try:
            with np.load(path) as d:
                arrays = {k: d[k] for k in d.files}
        except (OSError, ValueError) as e:
            raise ExportError(f"cannot read pulled parameters {path}: {e}") from None
        if "params" not in arrays:
            raise ExportError(f"{path}: no array 'params'; pass the .npz written by `mcutrain pull`")
        info = {k: arrays[k].item() for k in ("model_hash", "plan", "step") if k in arrays}
        return Pulled(np.asarray(arrays["params"], np.float32).ravel(), **info)


def trainable_count(graph: ir.Graph, plan: UpdatePlan) -> int:
    """Values in the device's export vector (``mt_export_params``) of ``plan``."""
    n = 0
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        w = graph.param(node.name, "weight")
        n += lu.channels * (w.size // graph.shapes[node.name][0]) if lu.update is Update.WEIGHT else 0
        n += graph.shapes[node.name][0] if lu.bias else 0
    return n


def merge_params(graph: ir.Graph, plan: UpdatePlan, pulled: Pulled) -> Params:
    """The full IR parameter dict of ``graph`` with the pulled trainable rows of ``plan``."""
    plan.validate(graph)
    if pulled.model_hash is not None and pulled.model_hash != plan.model_hash:
        raise ExportError(
            f"the parameters were pulled from a device running model {pulled.model_hash[:12]}, but the plan "
            f"is for {plan.model_hash[:12]} ({plan.model_name}): pass the plan the firmware was built from"
        )
    summary = plan_summary(plan)[:96]  # the firmware keeps 96 characters of it
    if pulled.plan is not None and pulled.plan != summary:
        raise ExportError(
            f"the device runs plan '{pulled.plan}', the plan file describes '{summary}': pass the plan the "
            "firmware was built from"
        )
    want = trainable_count(graph, plan)
    if pulled.params.size != want:
        raise ExportError(
            f"{pulled.params.size} parameter values given, the plan trains {want}: pass the plan the "
            "firmware was built from"
        )
    if not np.isfinite(pulled.params).all():
        raise ExportError("the pulled parameters hold NaN or Inf; the training diverged, nothing to export")
    return unflatten_params(graph, plan, pulled.params)


# ---------------------------------------------------------------------------------------------------
# Tracing IR parameters to source tensors, and writing new values back
# ---------------------------------------------------------------------------------------------------


def trace_sources(
    sources: Mapping[str, np.ndarray], convert: Callable[[dict[str, np.ndarray]], Params]
) -> dict[str, np.ndarray]:
    """For every element of every IR parameter, the index into the concatenated ``sources`` it is a
    verbatim copy of, or -1 (a computed value, a constant of another type, a zero-filled bias).

    ``convert`` imports the model with the given source values. It runs twice, on ids ``1..n`` and on
    ``n+1..2n``: an element that copies source ``k`` reads ``k+1`` and ``k+1+n``; a sum, a scale or a
    value of another tensor type fails that test.
    """
    sizes = [v.size for v in sources.values()]
    n = int(sum(sizes))
    if 2 * n + 1 >= 2**24:
        raise ExportError(f"the model has {n} source values; export traces at most {2**23 - 1}")
    offsets = np.cumsum([0, *sizes])

    def filled(first: int) -> dict[str, np.ndarray]:
        return {
            k: np.arange(first + o, first + o + v.size, dtype=np.float32).reshape(v.shape)
            for (k, v), o in zip(sources.items(), offsets, strict=False)
        }

    a, b = convert(filled(1)), convert(filled(1 + n))
    out = {}
    for key, va in a.items():
        x, y = va.astype(np.float64), b[key].astype(np.float64)
        copy = (x == np.round(x)) & (x >= 1) & (x <= n) & (y - x == n)
        out[key] = np.where(copy, x - 1, -1).astype(np.int64)
    return out


def write_back(
    trace: Mapping[str, np.ndarray], old: Params, new: Params, flat: np.ndarray, what: str
) -> tuple[np.ndarray, int]:
    """New values of the concatenated sources ``flat`` so that every IR parameter that differs between
    ``old`` and ``new`` is stored; returns them and how many source values changed. Refuses a change with
    no verbatim source and a source shared by elements that want different values."""
    out = flat.copy()
    writer = np.full(flat.size, -1)  # which key (index into ``keys``) wrote each source value
    keys = sorted(new)
    for i, key in enumerate(keys):
        changed = np.asarray(new[key] != old[key]).ravel()
        if not changed.any():
            continue
        idx = trace[key].ravel()[changed]
        if (idx < 0).any():
            part = "bias" if key.endswith("bias") else "weights"
            raise ExportError(
                f"{key}: {int((idx < 0).sum())} trained values have no float32 tensor of their own in {what} "
                "(a bias the source model lacks, a float16 or computed constant); retrain with a plan that "
                f"leaves this layer's {part} frozen, or give the source model that tensor"
            )
        out[idx] = np.asarray(new[key], np.float32).ravel()[changed]
        writer[idx] = i
    for key in keys:  # every element that reads a written source must agree with it
        t = np.maximum(trace[key].ravel(), 0)
        bad = (
            (trace[key].ravel() >= 0)
            & (writer[t] >= 0)
            & (out[t] != np.asarray(new[key], np.float32).ravel())
        )
        if bad.any():
            other = keys[int(writer[t[bad][0]])]
            raise ExportError(
                f"{key} and {other} share one tensor in {what} but were trained to different values; the "
                "shared tensor cannot hold both. Plan an update that leaves one of them frozen"
            )
    return out, int((out != flat).sum())


def concat_sources(sources: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([v.ravel() for v in sources.values()]).astype(np.float32)


def split_flat(flat: np.ndarray, like: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out, off = {}, 0
    for k, v in like.items():
        out[k] = flat[off : off + v.size].reshape(v.shape)
        off += v.size
    return out


# ---------------------------------------------------------------------------------------------------
# TFLite
# ---------------------------------------------------------------------------------------------------


def _float_buffers(data: bytes, path: Path) -> dict[str, tuple[int, int]]:
    """Buffer index -> (byte offset, element count) of every buffer that a float32 tensor reads."""
    from ai_edge_litert import schema_py_generated as tfl

    from mcutrain.frontends.tflite_file import parse_model, single_subgraph

    sg = single_subgraph(parse_model(data, path), path)
    root = tfl.Model.GetRootAs(data, 0)
    out = {}
    for t in sg.tensors or []:
        if t.type != tfl.TensorType.FLOAT32 or t.buffer <= 0 or str(t.buffer) in out:
            continue
        buf = root.Buffers(t.buffer)
        numel = int(np.prod(t.shape)) if t.shape is not None else 1
        if buf.DataLength():
            start, size = buf._tab.Vector(buf._tab.Offset(4)), buf.DataLength()
        elif buf.Offset() > 1 and buf.Size():
            start, size = buf.Offset(), buf.Size()
        else:
            continue
        if size == 4 * numel:
            out[str(t.buffer)] = (start, numel)
    return out


def _tflite_params(data: bytes, path: Path, buffers: Mapping[str, np.ndarray]) -> Params:
    """Import the ``.tflite`` in ``data`` with the given float32 buffers replaced."""
    from mcutrain.frontends.tflite import Converter
    from mcutrain.frontends.tflite_file import parse_model, single_subgraph

    model = parse_model(data, path)
    for k, v in buffers.items():
        buf = model.buffers[int(k)]
        buf.data, buf.offset, buf.size = np.frombuffer(v.astype("<f4").tobytes(), np.uint8), 0, 0
    return Converter(model, single_subgraph(model, path), data, path.stem).convert().params


def export_tflite(source: str | Path, graph: ir.Graph, params: Params, out: str | Path) -> int:
    """Write ``source`` with ``params`` (IR layouts, for ``graph``, the import of ``source``) in its
    weight buffers to ``out``; every byte outside the changed values stays the same. Returns how many
    float values changed."""
    from mcutrain.frontends.tflite import load_tflite

    path = Path(source)
    data = path.read_bytes()
    if load_tflite(path).fingerprint() != graph.fingerprint():
        raise ExportError(f"{path} is not the model the plan was made for (its model hash differs)")
    where = _float_buffers(data, path)
    sources = {k: np.frombuffer(data, "<f4", n, s).copy() for k, (s, n) in where.items()}
    trace = trace_sources(sources, lambda v: _tflite_params(data, path, v))
    flat, n_changed = write_back(trace, graph.params, params, concat_sources(sources), str(path))
    patched = bytearray(data)
    for k, v in split_flat(flat, sources).items():
        start, n = where[k]
        patched[start : start + 4 * n] = v.astype("<f4").tobytes()
    Path(out).write_bytes(bytes(patched))
    got = load_tflite(out).params
    if any(not np.array_equal(got[k], np.asarray(params[k], np.float32)) for k in params):
        raise ExportError(f"internal error: {out} does not re-import to the exported parameters")
    return n_changed


# ---------------------------------------------------------------------------------------------------
# The verb
# ---------------------------------------------------------------------------------------------------

OUT_SUFFIXES = {"tflite": (".tflite",), "torch": (".pt", ".pth"), "json": (".json",)}


def source_kind(model: str) -> str:
    """``tflite``, ``torch`` (``.pt2`` or a factory, built-ins included) or ``json``."""
    from mcutrain.zoo import BUILTIN

    if model.endswith(".tflite"):
        return "tflite"
    if model.endswith(".json"):
        return "json"
    if model.endswith(".pt2") or model in BUILTIN or (":" in model and not Path(model).exists()):
        return "torch"
    raise ExportError(
        f"cannot export into {model!r}: export writes back into a .tflite file, a PyTorch model (.pt2 or "
        "package.module:factory, written as a state_dict) or an mcutrain graph .json; convert other "
        "formats (e.g. Keras .h5) to .tflite first"
    )


@dataclass(frozen=True)
class ExportResult:
    out: Path
    kind: str
    changed: int  # source values (tflite: floats in the file; torch: state_dict elements) that changed


def export(
    model: str,
    pulled: str | Path,
    plan_path: str | Path,
    out: str | Path,
    input_shape: Sequence[int] | None = None,
) -> ExportResult:
    """``mcutrain export``: the model in its own format with the pulled parameters."""
    from mcutrain import api

    kind = source_kind(str(model))
    if not str(out).endswith(OUT_SUFFIXES[kind]):
        raise ExportError(
            f"a {kind} source is written as {' or '.join(OUT_SUFFIXES[kind])}; --out {out} has another suffix"
        )
    pf = read_plan(plan_path)
    graph = api.load(model, input_shape or pf.input_shape)
    plan = pf.plan
    planned = graph
    if pf.ptq:  # the plan is for the float model's quantization: the same calibration gives the same graph
        planned = api.quantize(graph, api.load_calibration(pf.ptq["calib"], graph, plan.loss).x)
    params = merge_params(planned, plan, Pulled.load(pulled))
    if kind == "tflite" and graph.quantized:  # a full-integer model: updated rows requantized
        from mcutrain.host.export_int8 import export_tflite_int8

        changed = export_tflite_int8(model, graph, plan, params, out)
    elif kind == "tflite":  # float32 (also for int8 frozen layers of a quantized float model: unchanged)
        changed = export_tflite(model, graph, params, out)
    elif kind == "json":
        changed = sum(int((params[k] != graph.params[k]).sum()) for k in params)
        Path(out).write_text(graph.replace(params=params).to_json())
    else:
        import torch

        from mcutrain.host.export_torch import torch_source, torch_state_dict

        ep, base = torch_source(str(model), input_shape)
        sd = torch_state_dict(ep, graph, params, base)
        changed = sum(int((sd[k] != base[k]).sum()) for k in sd if sd[k] is not base[k])
        torch.save(sd, out)
    return ExportResult(Path(out), kind, changed)
