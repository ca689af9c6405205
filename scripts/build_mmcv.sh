#!/usr/bin/env bash
# Build a CPU wheel of mmcv 2.1.0 with its compiled ops, for the optional mmdet detector backend
# (`pip install "privbench[mmdet]"`). mmdet 3.3.0 needs mmcv < 2.2; PyPI has only mmcv's source
# distribution, and mmcv-lite lacks the compiled ops (RoIAlign, NMS, ...) that mmdet imports.
#
# Recipe (measured: about 24 minutes on 2 CPU cores):
#   - mmcv 2.1.0 sdist, built with MMCV_WITH_OPS=1 FORCE_CUDA=0 (CPU ops);
#   - setuptools < 81 in the build environment (mmcv's setup.py imports pkg_resources, which
#     setuptools 81 removed) and --no-build-isolation (so the build sees the installed torch),
#     for the download too (pip runs the sdist's setup.py to read its metadata);
#   - the -std=c++17 flags of mmcv's setup.py raised to -std=c++20 (torch 2.14's headers need it).
# The wheel goes into a cache folder and is reused on the next run:
#
#   scripts/build_mmcv.sh                       # builds once, then prints the cached wheel
#   .venv/bin/pip install --find-links ~/.cache/privbench/wheels -e ".[mmdet]"
#
# Environment: PYTHON (default .venv/bin/python), MMCV_WHEEL_CACHE (default
# ${PRIVBENCH_CACHE:-~/.cache/privbench}/wheels), MAX_JOBS (parallel compile jobs, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.1.0
PYTHON=${PYTHON:-.venv/bin/python}
if [[ "$PYTHON" == */* ]]; then  # an absolute path (not resolving the venv's symlink)
    PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
fi
CACHE=${MMCV_WHEEL_CACHE:-${PRIVBENCH_CACHE:-$HOME/.cache/privbench}/wheels}
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"

shopt -s nullglob
cached=("$CACHE"/mmcv-"$VERSION"-*.whl)
if (( ${#cached[@]} )); then
    echo "mmcv $VERSION wheel already built: ${cached[0]}"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The build tools go into a private folder put first on PYTHONPATH (the venv's own setuptools is
# left alone); ninja compiles in parallel.
"$PYTHON" -m pip install --quiet --target "$work/tools" "setuptools<81" wheel ninja
export PYTHONPATH="$work/tools${PYTHONPATH:+:$PYTHONPATH}" PATH="$work/tools/bin:$PATH"
export MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
# Even downloading the sdist runs its setup.py (metadata), hence the same environment.
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation "mmcv==$VERSION" -d "$work"
tar -xzf "$work/mmcv-$VERSION.tar.gz" -C "$work"
source_dir="$work/mmcv-$VERSION"

grep -q -- '-std=c++17' "$source_dir/setup.py" || {
    echo "mmcv $VERSION setup.py has no -std=c++17 flag to raise; the recipe does not apply" >&2
    exit 1
}
sed -i 's/-std=c++17/-std=c++20/g' "$source_dir/setup.py"

started=$(date +%s)
(cd "$source_dir" && "$PYTHON" -m pip wheel --no-build-isolation --no-deps --wheel-dir "$CACHE" .)
built=("$CACHE"/mmcv-"$VERSION"-*.whl)
echo "built ${built[0]} in $(( $(date +%s) - started )) s"
