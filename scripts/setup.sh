#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh Debian machine for mcutrain:
#   1. Debian packages: cross compilers, C libraries, QEMU (only those missing are installed);
#   2. a virtual environment in .venv with the pinned Python dependencies and mcutrain itself.
# Re-running it is cheap: every step checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gcc-arm-none-eabi libnewlib-arm-none-eabi picolibc-arm-none-eabi qemu-system-arm
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc
  clang clang-format libclang-rt-14-dev make
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.mcutrain-deps
want=$(cat requirements/constraints.txt requirements/dev.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing Python dependencies (torch pinned by requirements/constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -r requirements/dev.txt
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -e . --no-build-isolation --no-deps
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch, mcutrain; print("torch", torch.__version__, "| mcutrain", mcutrain.__version__)')"
