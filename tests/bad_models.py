"""PyTorch factories for the bad-input tests (tests/test_bad_inputs.py)."""

from __future__ import annotations

from torch import nn


def mlp() -> nn.Module:
    """An MLP without ``example_input_shape``: its input shape must come from ``--input-shape 1,16``."""
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 10))


class _Lstm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):  # type: ignore[no-untyped-def]
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


def lstm() -> nn.Module:
    return _Lstm()
