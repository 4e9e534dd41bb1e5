"""μPyD-Net-style monocular depth network for a grayscale MCU camera (the motivating case).

``updepthnet()`` builds a 4-level pyramidal encoder-decoder (PyD-Net: Poggi et al. 2018; μPyD-Net:
Peluso et al. 2020) for a ``1 x 48 x 64`` grayscale image in [0, 1] and returns dense *normalized*
depth ``depth / MAX_DEPTH_M`` in [0, 1] at the input resolution, shape ``(1, 48, 64)``.

* Encoder: per level a 3x3 stride-2 conv and a 3x3 conv, LeakyReLU(0.2); 12/16/32/56 channels at
  24x32, 12x16, 6x8 and 3x4.
* Decoder (coarse to fine): at each level a 3x3 conv over ``cat(encoder features, upsampled coarser
  decoder features)``; the coarser features are upsampled by a learned 2x2 stride-2 transposed conv,
  as in PyD-Net.
* Head at half resolution (24x32): 3x3 conv -> Sigmoid, then a fixed bilinear x2 upsampling to 48x64.

Only ops of :mod:`mcutrain.core.ops` are used (conv, transposed conv, leaky ReLU, sigmoid, channel concat,
integer-factor bilinear upsampling) and nothing multiplies by a constant inside ``forward``: metres are
``pred * MAX_DEPTH_M``, computed outside the network by :func:`depth_to_metres`. See docs/depth.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from mcutrain.data.scenes import SceneBatch

#: The network predicts ``depth / MAX_DEPTH_M`` (z-depth, metres) through a sigmoid.
MAX_DEPTH_M = 10.0
#: Input resolution (H, W): 4:3 like the 324x244 camera of the nano-drone recordings.
INPUT_HW = (48, 64)
#: Encoder channels per pyramid level (strides 2, 4, 8, 16).
ENC_CHANNELS = (12, 16, 32, 56)
#: Decoder channels per level, finest first.
DEC_CHANNELS = (16, 16, 32, 32)
#: Initial prediction (normalized): the head's bias starts at logit(INIT_DEPTH_M / MAX_DEPTH_M).
INIT_DEPTH_M = 2.5
LEAKY_SLOPE = 0.2


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class UPyDNet(nn.Module):
    """Pyramidal encoder-decoder; see the module docstring. ``forward(x)`` maps ``[N, 1, H, W]`` images in
    [0, 1] to ``[N, 1, H, W]`` normalized depth in (0, 1). H and W must be multiples of 16."""

    example_input_shape: tuple[int, int, int]

    def __init__(
        self,
        input_hw: tuple[int, int] = INPUT_HW,
        enc: tuple[int, ...] = ENC_CHANNELS,
        dec: tuple[int, ...] = DEC_CHANNELS,
    ) -> None:
        super().__init__()
        if len(enc) != len(dec):
            raise ValueError(f"encoder and decoder need the same number of levels, got {enc} and {dec}")
        levels = len(enc)
        if input_hw[0] % 2**levels or input_hw[1] % 2**levels:
            raise ValueError(f"input size {input_hw} must be a multiple of {2**levels} for {levels} levels")
        self.example_input_shape = (1, *input_hw)
        self.enc_down = nn.ModuleList()
        self.enc_conv = nn.ModuleList()
        cin = 1
        for c in enc:
            self.enc_down.append(_conv(cin, c, stride=2))
            self.enc_conv.append(_conv(c, c))
            cin = c
        # Decoder level l (0 = finest) reads cat(enc[l], up[l]); up[l] = ConvT(dec[l + 1]) -> dec[l + 1] / 2.
        self.dec_conv = nn.ModuleList()
        self.dec_up = nn.ModuleList()
        for l in range(levels):
            up_in = dec[l + 1] // 2 if l + 1 < levels else 0
            self.dec_conv.append(_conv(enc[l] + up_in, dec[l]))
            if l > 0:
                self.dec_up.append(nn.ConvTranspose2d(dec[l], dec[l] // 2, 2, stride=2))
        self.head = _conv(dec[0], 1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for down, conv in zip(self.enc_down, self.enc_conv, strict=True):
            x = self.act(conv(self.act(down(x))))
            feats.append(x)
        y = self.act(self.dec_conv[-1](feats[-1]))
        for l in range(len(feats) - 2, -1, -1):
            up = self.act(self.dec_up[l](y))
            y = self.act(self.dec_conv[l](torch.cat([feats[l], up], dim=1)))
        d = torch.sigmoid(self.head(y))
        return F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(m.bias)


def updepthnet(seed: int = 0) -> UPyDNet:
    """The 48x64 grayscale μPyD-Net (106,173 parameters), deterministically initialized from ``seed``."""
    torch.manual_seed(seed)
    model = UPyDNet()
    _init(model)
    with torch.no_grad():
        nn.init.normal_(model.head.weight, std=1e-3)
        p = INIT_DEPTH_M / MAX_DEPTH_M
        model.head.bias.fill_(math.log(p / (1.0 - p)))
    return model


def depth_to_metres(pred: torch.Tensor) -> torch.Tensor:
    """Network output (normalized depth in [0, 1]) -> z-depth in metres."""
    return pred * MAX_DEPTH_M


def metres_to_target(depth_m: torch.Tensor) -> torch.Tensor:
    """Metric depth -> the network's target unit (clipped to [0, 1]); the inverse of
    :func:`depth_to_metres` inside the range."""
    return (depth_m / MAX_DEPTH_M).clamp(0.0, 1.0)


#: Weights pre-trained on synthetic domain A by ``python -m mcutrain.zoo.pretrain_depth``.
WEIGHTS = Path(__file__).resolve().parent / "weights" / "updepthnet_domain_a.npz"
#: Weights pre-trained on the drone-lab scenes (standardized frames) by ``... pretrain_depth --domain drone``.
DRONE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "updepthnet_drone_lab.npz"


def _with_weights(path: Path, how: str) -> UPyDNet:
    model = updepthnet()
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m mcutrain.zoo.pretrain_depth{how}`")
    with np.load(path) as d:
        model.load_state_dict({k: torch.from_numpy(d[k]) for k in d.files})
    return model.eval()


def updepthnet_pretrained() -> UPyDNet:
    """The depth network with the committed domain-A weights (see :mod:`mcutrain.zoo.pretrain_depth`)."""
    return _with_weights(WEIGHTS, "")


def updepthnet_drone() -> UPyDNet:
    """The depth network pre-trained on the drone-lab scenes; it expects standardized frames
    (:mod:`mcutrain.data.frame_scale`)."""
    return _with_weights(DRONE_WEIGHTS, " --domain drone")


def zone_tensors(batch: SceneBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training tensors for ToF supervision: images in [0, 1] ``[N, 1, H, W]``, zone distances in the
    network's unit ``[N, 64]`` and their validity ``[N, 64]`` (0/1), all float32."""
    n = len(batch.image)
    x = (batch.image[:, None] / 255.0).astype(np.float32)
    t = (batch.tof_mm.reshape(n, -1) / 1000.0 / MAX_DEPTH_M).astype(np.float32)
    return x, t, batch.tof_valid.reshape(n, -1).astype(np.float32)


def depth_errors(pred_m: np.ndarray, batch: SceneBatch) -> tuple[float | None, float]:
    """(dense RMSE against the true depth, or None for frames without it; RMSE of the prediction averaged
    over each ToF zone against the valid zone distances), in metres, of predictions ``[N, H, W]``."""
    dense = None if batch.depth is None else float(np.sqrt(np.mean((pred_m - batch.depth) ** 2)))
    v = batch.tof_valid
    zones = batch.footprint.zone_means(pred_m)
    return dense, float(np.sqrt(np.mean((zones[v] - batch.tof_mm[v] / 1000.0) ** 2)))


@torch.no_grad()
def depth_rmse(model: nn.Module, batch: SceneBatch, standardize: bool = False) -> tuple[float | None, float]:
    """:func:`depth_errors` of an ``nn.Module`` on a batch of scenes (``standardize``: frames as
    :func:`mcutrain.data.frame_scale.network_input` makes them)."""
    from mcutrain.data.frame_scale import network_input

    x = torch.from_numpy(network_input(batch.image, standardize))
    pred = torch.cat([depth_to_metres(model(x[i : i + 64])) for i in range(0, len(x), 64)])[:, 0].numpy()
    return depth_errors(pred, batch)
