#!/bin/sh
# The README's set-up for a machine without an NVIDIA GPU: torch's CPU build first (from PyTorch's own index,
# which pyproject.toml cannot name), then nst-bot with its dev extra, into .venv beside this repository.
# A plain `pip install -e ".[dev]"` would pull the CUDA build of torch: about 5.5 GB.
#   bash scripts/setup-cpu.sh            # PYTHON=python3.12 or TORCH_INDEX_URL=<a mirror> to change either
set -eu
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"

"$python" -m venv .venv
.venv/bin/pip install --index-url "$index" torch torchvision
.venv/bin/pip install -e ".[dev]"
echo "nst-bot is set up with torch's CPU build: .venv/bin/nst-bot --help, or 'source .venv/bin/activate' first."
