"""Frontends: turn a model file or a PyTorch module into an :class:`mcutrain.ir.Graph`.

``load_model(spec)`` accepts a ``.tflite`` file, a ``.pt2`` file (a saved ``torch.export`` program)
or ``package.module:factory`` (a callable returning an ``nn.Module``). Every failure a user can cause
(missing file, corrupt or truncated file, unsupported op or data type) raises :class:`FrontendError`
with a message that says what to do; the CLI prints it without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..ir import Graph


class FrontendError(ValueError):
    """A model that cannot be imported, with a message meant for the user."""


def load_model(spec: str | Path, input_shape: Sequence[int] | None = None) -> Graph:
    """Import a model. ``input_shape`` is the per-sample shape (C, H, W) for PyTorch sources whose
    factory does not declare ``example_input_shape``; it is ignored for ``.tflite`` files."""
    s = str(spec)
    if s.endswith(".tflite"):
        from .tflite import load_tflite

        return load_tflite(s)
    if s.endswith(".pt2"):
        from .torch import load_exported

        return load_exported(s)
    if ":" in s and not Path(s).exists():
        from .torch import load_factory

        return load_factory(s, input_shape)
    raise FrontendError(
        f"cannot tell what kind of model {s!r} is: pass a .tflite file, a .pt2 file (torch.export.save) "
        "or 'package.module:factory'"
    )
