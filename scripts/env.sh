# Source me: the environment every build and test here uses.
# Caches live outside the clone so CI and later sessions reuse them.
export CXR_CACHE="${CXR_CACHE:-$HOME/.cache/cxr-edge}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CXR_CACHE/target}"
# The aarch64 cross-build (another toolchain: nothing to share with the host's).
export CARGO_TARGET_DIR_AARCH64="${CARGO_TARGET_DIR_AARCH64:-$CXR_CACHE/target-aarch64}"
if [ -f "$CXR_CACHE/libtorch-2.13.0/.complete" ]; then
  export LIBTORCH="$CXR_CACHE/libtorch-2.13.0"
fi
# libtorch spins with its default thread count on small machines.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
