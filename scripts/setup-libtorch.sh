#!/usr/bin/env bash
# Idempotent libtorch set-up for the trainer (tch 0.26 expects PyTorch 2.13.0).
#
#   scripts/setup-libtorch.sh          slim CPU route (~540 MB download, no Python at build time)
#   scripts/setup-libtorch.sh --cuda   full route: a venv with torch==2.13.0 and its CUDA 13 libraries
#
# Prints the environment to use, e.g. `eval "$(scripts/setup-libtorch.sh)"`.
# The cache lives outside the clone (CXR_CACHE, default ~/.cache/cxr-edge) so CI reuses it.
set -euo pipefail
TORCH_VERSION=2.13.0
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85
CACHE=${CXR_CACHE:-$HOME/.cache/cxr-edge}
mode=${1:-slim}

if [ "$mode" = "--cuda" ]; then
  venv="$CACHE/torch-venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "torch==$TORCH_VERSION" >&2
  fi
  echo "export VIRTUAL_ENV=$venv PATH=$venv/bin:\$PATH LIBTORCH_USE_PYTORCH=1"
  exit 0
fi

dest="$CACHE/libtorch-$TORCH_VERSION"
if [ ! -f "$dest/.complete" ]; then
  wheels="$CACHE/wheels"
  mkdir -p "$wheels"
  [ -n "$(ls "$wheels"/torch-$TORCH_VERSION-*.whl 2>/dev/null)" ] ||
    pip download --quiet --no-deps "torch==$TORCH_VERSION" -d "$wheels" >&2
  [ -n "$(ls "$wheels"/nvidia_cuda_runtime-*.whl 2>/dev/null)" ] ||
    pip download --quiet --no-deps "nvidia-cuda-runtime==$CUDART_VERSION.*" -d "$wheels" >&2
  [ -n "$(ls "$wheels"/nvidia_cuda_cupti-*.whl 2>/dev/null)" ] ||
    pip download --quiet --no-deps "nvidia-cuda-cupti==$CUPTI_VERSION.*" -d "$wheels" >&2
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  (cd "$dest.tmp" && unzip -q "$wheels"/torch-$TORCH_VERSION-*.whl 'torch/include/*' 'torch/lib/*' \
     && mv torch/include torch/lib . && rmdir torch)
  for w in "$wheels"/nvidia_cuda_runtime-*.whl "$wheels"/nvidia_cuda_cupti-*.whl; do
    unzip -q -o -j "$w" '*/lib/lib*.so*' -d "$dest.tmp/lib"
  done
  touch "$dest.tmp/.complete"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
echo "export LIBTORCH=$dest LIBTORCH_BYPASS_VERSION_CHECK=0"
