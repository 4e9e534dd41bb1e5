"""Frontends: turn a model file or a PyTorch module into an :class:`mcutrain.core.graph.Graph`.

``load_model(spec)`` accepts a ``.tflite`` file, an mcutrain IR ``.json`` file, a ``.pt2`` file (a
saved ``torch.export`` program) or ``package.module:factory`` (a callable returning an ``nn.Module``).
Every failure a user can cause (missing file, corrupt or truncated file, unsupported op or data type)
raises :class:`FrontendError` with a message that says what to do; the CLI prints it without a
traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mcutrain.core.ir import Graph


class FrontendError(ValueError):
    """A model that cannot be imported, with a message meant for the user."""


def load_model(spec: str | Path, input_shape: Sequence[int] | None = None) -> Graph:
    """Import a model. ``input_shape`` is the per-sample shape (C, H, W) for PyTorch sources whose
    factory does not declare ``example_input_shape``; it is ignored for ``.tflite`` files."""
    s = str(spec)
    if s.endswith(".json"):
        return _load_ir_json(Path(s))
    if s.endswith(".tflite"):
        from mcutrain.frontends.tflite import load_tflite

        return load_tflite(s)
    if s.endswith(".pt2"):
        from mcutrain.frontends.torch import load_exported

        return load_exported(s)
    if ":" in s and not Path(s).exists():
        from mcutrain.frontends.torch import load_factory

        return load_factory(s, input_shape)
    raise FrontendError(
        f"cannot tell what kind of model {s!r} is: pass a .tflite file, a .pt2 file (torch.export.save), "
        "an mcutrain graph .json "
        "or 'package.module:factory'"
    )


def _load_ir_json(path: Path) -> Graph:
    from mcutrain.core.ir import IRError

    try:
        return Graph.from_json(path.read_text())
    except FileNotFoundError:
        raise FrontendError(f"model file {path} does not exist") from None
    except (ValueError, KeyError, TypeError, IRError) as e:
        raise FrontendError(f"{path} is not a valid mcutrain graph ({type(e).__name__}: {e})") from None
