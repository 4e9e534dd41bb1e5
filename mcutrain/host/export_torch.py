"""The PyTorch side of export (docs/export.md): a ``state_dict`` for the source ``nn.Module`` with the
pulled parameters, batch norms un-folded (their statistics kept, the conv weight and the batch norm's
``beta`` solved for)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mcutrain.core import ir
from mcutrain.core.passes import bn_scale_shift, fold_batchnorm, remove_identities, scaled_weight

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram

from mcutrain.host.export import (
    FOLDABLE,
    ExportError,
    Params,
    concat_sources,
    split_flat,
    trace_sources,
    write_back,
)

# ---------------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------------


def unfold_batchnorm(unfolded: ir.Graph, folded: ir.Graph, params: Params) -> Params:
    """Parameters of ``unfolded`` (the import before :func:`~mcutrain.passes.fold_batchnorm`) that compute
    what ``params`` of ``folded`` compute. A batch norm keeps its running statistics and ``gamma``; a
    changed folded weight row becomes ``w / scale`` in the conv, a changed folded bias moves into
    ``beta``. A batch norm kept as a channel affine gets ``gamma`` and ``beta`` solved from it. Values
    that did not change are copied bit for bit."""
    out = {k: v.copy() for k, v in unfolded.params.items()}
    folded_names = {n.name for n in folded.nodes}
    into: dict[str, ir.Node] = {}
    for bn in (n for n in unfolded.nodes if isinstance(n.op, ir.BatchNorm)):
        scale, shift = bn_scale_shift(unfolded, bn)
        if bn.name in folded_names:  # kept as a ChannelAffine
            s_new = params[f"{bn.name}.weight"].astype(np.float64)
            t_new = params[f"{bn.name}.bias"].astype(np.float64)
            mean, var = (unfolded.param(bn.name, k).astype(np.float64) for k in ("mean", "var"))
            _set_changed(out, f"{bn.name}.gamma", s_new * np.sqrt(var + bn.op.eps), s_new != scale)
            _set_changed(out, f"{bn.name}.beta", t_new + mean * s_new, (s_new != scale) | (t_new != shift))
            continue
        prod = unfolded.node(bn.inputs[0])
        if not isinstance(prod.op, FOLDABLE) or prod.name in into:
            raise ExportError(
                f"batch norm {bn.name} was folded into {prod.name} together with another one; "
                "such chains cannot be un-folded"
            )
        into[prod.name] = bn
        w_key, b_key = prod.param_key("weight"), prod.param_key("bias")
        w_new, b_new = params[w_key], params[b_key].astype(np.float64)
        changed = w_new != folded.params[w_key]
        with np.errstate(divide="ignore"):
            w0 = scaled_weight(prod, w_new.astype(np.float64), 1.0 / scale)
        if not np.isfinite(w0[changed]).all():
            raise ExportError(f"{prod.name}: rows behind a batch norm with gamma = 0 were trained")
        _set_changed(out, w_key, w0, changed)
        b0 = unfolded.param(prod.name, "bias").astype(np.float64)
        mean = unfolded.param(bn.name, "mean").astype(np.float64)
        _set_changed(out, f"{bn.name}.beta", b_new - (b0 - mean) * scale, b_new != folded.params[b_key])
    for key, v in params.items():
        node = key.rsplit(".", 1)[0]
        if node not in into and key in out:
            out[key] = np.asarray(v, np.float32).copy()
    return out


def _set_changed(out: Params, key: str, value: np.ndarray, changed: np.ndarray) -> None:
    out[key] = np.where(changed, value, out[key]).astype(np.float32)


def _torch_params(ep: ExportedProgram, name: str, values: Mapping[str, np.ndarray]) -> Params:
    """Import the exported program ``ep`` (batch norms unfolded) with some state tensors replaced."""
    import torch

    from mcutrain.frontends.torch import program_to_graph

    sd = ep.state_dict
    saved = {k: sd[k].detach().clone() for k in values}
    try:
        with torch.no_grad():
            for k, v in values.items():
                sd[k].copy_(torch.from_numpy(np.ascontiguousarray(v)).reshape(sd[k].shape))
        return program_to_graph(ep, name).params
    finally:
        with torch.no_grad():
            for k, t in saved.items():
                sd[k].copy_(t)


def torch_state_dict(
    ep: ExportedProgram, graph: ir.Graph, params: Params, base: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``base`` (the source module's ``state_dict``) with ``params`` of ``graph`` written back through
    the exported program ``ep`` the graph was imported from."""
    import torch

    from mcutrain.frontends.torch import program_to_graph

    unfolded = program_to_graph(ep, graph.name)
    folded = fold_batchnorm(remove_identities(unfolded))
    if folded.fingerprint() != graph.fingerprint():
        raise ExportError(
            "the source model is not the one the plan was made for (its model hash differs); a factory "
            "must return the same weights on every call (seed it)"
        )
    sd = ep.state_dict
    sources = {k: t.detach().numpy().astype(np.float32) for k, t in sd.items() if t.dtype == torch.float32}
    trace = trace_sources(sources, lambda v: _torch_params(ep, graph.name, v))
    new0 = unfold_batchnorm(unfolded, folded, params)
    flat, _ = write_back(trace, unfolded.params, new0, concat_sources(sources), "the module's state_dict")
    values = split_flat(flat, sources)
    refolded = fold_batchnorm(
        remove_identities(unfolded.replace(params=_torch_params(ep, graph.name, values)))
    )
    for k, v in params.items():
        if not np.allclose(refolded.params[k], v, rtol=1e-5, atol=1e-6 * (1 + np.abs(v).max())):
            raise ExportError(f"internal error: the written-back {k} does not fold to the trained values")
    out = dict(base)
    for k, v in values.items():
        if not np.array_equal(v, sources[k]):
            out[k] = torch.from_numpy(v.copy()).reshape(sd[k].shape)
    return out


def torch_source(
    model: str, input_shape: Sequence[int] | None
) -> tuple[ExportedProgram, dict[str, torch.Tensor]]:
    import torch

    from mcutrain.frontends.torch import call_factory, export_module
    from mcutrain.zoo import resolve

    if model.endswith(".pt2"):
        ep = torch.export.load(model)
        return ep, dict(ep.state_dict)
    module = call_factory(resolve(model))
    shape = input_shape or getattr(module, "example_input_shape", None)
    if shape is None:
        raise ExportError(f"{model}: pass --input-shape (the module has no example_input_shape)")
    return export_module(module, torch.zeros((1, *shape))), module.state_dict()
