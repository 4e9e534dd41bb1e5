"""Built-in models: short names mapped to ``package.module:factory`` specs.

Factories are imported lazily (through :func:`mcutrain.frontends.load_model` /
:func:`mcutrain.frontends.torch.load_factory`), so listing the registry imports nothing heavy.
"""

from __future__ import annotations

from mcutrain.frontends import FrontendError

#: Short name -> factory spec. Every factory takes no arguments and returns an ``nn.Module`` with
#: ``example_input_shape`` (per sample, no batch axis) and deterministic weights.
BUILTIN: dict[str, str] = {
    "mlp": "mcutrain.zoo.toy:mlp",
    "resnet_block": "mcutrain.zoo.toy:resnet_block",
    "mbv2_block": "mcutrain.zoo.toy:mbv2_block",
    "tiny_unet": "mcutrain.zoo.toy:tiny_unet",
    "depth": "mcutrain.zoo.depth:updepthnet_pretrained",
    "depth_init": "mcutrain.zoo.depth:updepthnet",
    "depth_drone": "mcutrain.zoo.depth:updepthnet_drone",
}


def resolve(name: str) -> str:
    """The factory spec of a built-in model. A string that already is a model spec (``pkg.mod:factory``,
    a ``.pt2`` or ``.tflite`` path) is returned unchanged."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name or name.endswith((".pt2", ".tflite")):
        return name
    raise FrontendError(f"unknown built-in model {name!r}; choose one of: {', '.join(sorted(BUILTIN))}")
