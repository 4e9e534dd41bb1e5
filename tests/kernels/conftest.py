"""Fixtures of the kernel golden tests: one host build of firmware/runtime per session."""

from __future__ import annotations

import pytest

from .ckernels import Kernels, build


@pytest.fixture(scope="session")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Kernels:
    return Kernels(build(tmp_path_factory.mktemp("mt_kernels")))
