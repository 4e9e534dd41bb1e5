"""Small PyTorch models used by the tests and as built-in models of the CLI.

Each factory takes no arguments, seeds its own RNG (the caller's global RNG state is left untouched)
and returns an eval-mode ``nn.Module`` with ``example_input_shape`` set (per sample, no batch axis).
Together they cover every op family of the IR: conv (plain, strided, depthwise, 1x1), batch norm,
relu/relu6/sigmoid, residual add, max pool, global average pool, flatten, linear, nearest and bilinear
upsampling and channel concatenation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _seeded(seed: int, build: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    model.example_input_shape = input_shape
    return model.eval()


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


def mlp() -> nn.Module:
    """1x8x8 input -> flatten -> 64 -> relu -> 32 -> relu -> 10."""
    return _seeded(
        0,
        lambda: nn.Sequential(
            nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)
        ),
        (1, 8, 8),
    )


class ResNetBlock(nn.Module):
    """Conv-BN-ReLU stem, one basic residual block (stride 2, 1x1 projection shortcut), GAP, linear."""

    def __init__(self, cin: int = 3, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(cin, width), nn.ReLU())
        self.conv1 = nn.Sequential(*_conv_bn(width, 2 * width, stride=2), nn.ReLU())
        self.conv2 = nn.Sequential(*_conv_bn(2 * width, 2 * width))
        self.shortcut = nn.Sequential(*_conv_bn(width, 2 * width, k=1, stride=2))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))
        return self.fc(torch.flatten(self.pool(y), 1))


def resnet_block() -> nn.Module:
    """3x16x16 input, 10 classes."""
    return _seeded(1, ResNetBlock, (3, 16, 16))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 project + BN, add."""

    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        hidden = channels * expand
        self.expand = nn.Sequential(*_conv_bn(channels, hidden, k=1), nn.ReLU6())
        self.depthwise = nn.Sequential(*_conv_bn(hidden, hidden, groups=hidden), nn.ReLU6())
        self.project = nn.Sequential(*_conv_bn(hidden, channels, k=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.depthwise(self.expand(x)))


class MBV2Block(nn.Module):
    """Strided conv stem, one inverted residual block, head (1x1 conv, GAP, dropout, linear)."""

    def __init__(self, cin: int = 3, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(cin, width, stride=2), nn.ReLU6())
        self.block = InvertedResidual(width, expand=4)
        self.head = nn.Sequential(*_conv_bn(width, 4 * width, k=1), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.head(self.block(self.stem(x)))))


def mbv2_block() -> nn.Module:
    """3x16x16 input, 10 classes."""
    return _seeded(2, MBV2Block, (3, 16, 16))


class TinyUNet(nn.Module):
    """Two-level encoder-decoder: max-pool down, nearest and bilinear up, concat skips, sigmoid head."""

    def __init__(self, cin: int = 1, width: int = 8) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(*_conv_bn(cin, w), nn.ReLU())
        self.enc2 = nn.Sequential(*_conv_bn(w, 2 * w), nn.ReLU())
        self.bottleneck = nn.Sequential(*_conv_bn(2 * w, 2 * w), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.dec2 = nn.Sequential(*_conv_bn(4 * w, w), nn.ReLU())
        self.dec1 = nn.Sequential(*_conv_bn(2 * w, w), nn.ReLU())
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)  # w x 24 x 32
        e2 = self.enc2(self.pool(e1))  # 2w x 12 x 16
        b = self.bottleneck(self.pool(e2))  # 2w x 6 x 8
        d2 = self.dec2(torch.cat([self.up_nearest(b), e2], dim=1))  # w x 12 x 16
        d1 = self.dec1(torch.cat([self.up_bilinear(d2), e1], dim=1))  # w x 24 x 32
        return torch.sigmoid(self.head(d1))


def tiny_unet() -> nn.Module:
    """1x24x32 input (e.g. a grayscale frame), 1x24x32 output in (0, 1)."""
    return _seeded(3, TinyUNet, (1, 24, 32))
