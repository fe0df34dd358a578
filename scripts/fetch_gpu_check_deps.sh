#!/usr/bin/env bash
# Download the two public correlation implementations that scripts/gpu_check.sh compares against, for a
# GPU machine without internet access: run this where pip/PyPI can be reached, copy or carry the folder,
# and gpu_check.sh installs them from it (no network) before the benchmark.
#   localcorr 0.1.1                   pure Python + Triton (Triton comes with CUDA PyTorch), wheel
#   spatial-correlation-sampler 0.5.0 C++/CUDA, sdist only: gpu_check.sh builds it against the machine's torch
# Usage: bash scripts/fetch_gpu_check_deps.sh [DIR]   (default .gpu_deps, ignored by git)
# Versions and SHA-256 are pinned; a mismatch is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.gpu_deps}
mkdir -p "$DIR"
fetch() {  # url file sha256
    local url=$1 file=$DIR/$2 sha=$3
    if [ ! -f "$file" ] || ! echo "$sha  $file" | sha256sum -c --quiet - 2>/dev/null; then
        echo "downloading $2"
        curl -fsSL --retry 3 -o "$file.part" "$url"
        mv "$file.part" "$file"
    fi
    echo "$sha  $file" | sha256sum -c --quiet - || { echo "error: $file: SHA-256 mismatch (expected $sha)" >&2; exit 1; }
    echo "ok $file"
}
fetch https://files.pythonhosted.org/packages/55/53/348277566ce7a32ab78c547495400a42e5522089483b53fe40ab53677fb6/localcorr-0.1.1-py3-none-any.whl \
    localcorr-0.1.1-py3-none-any.whl a1bbff999d4265cbf23b6479eeca6cb9e284cb7b613efa403ac9513389d4cee6
fetch https://files.pythonhosted.org/packages/66/dd/a0caccedffdbe27c94851eb1faba5d61c86aacf161005580249550dd969b/spatial_correlation_sampler-0.5.0.tar.gz \
    spatial_correlation_sampler-0.5.0.tar.gz 872d720d3740f3caf0d15620af5180af8a1971568f9c7cda3664757262688d11
