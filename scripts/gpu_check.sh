#!/usr/bin/env bash
# Check the CUDA correlation kernels on a machine with an NVIDIA GPU, in one go:
#   1. environment (GPU, torch, CUDA)            4. CUDA + CPU correlation tests
#   2. `nvcc -c` compile check of the kernels    5. correlation benchmark (CPU and CUDA, fp32/fp16/bf16)
#   3. JIT build of the extension with CUDA      6. GPU target check
#   7. end-to-end estimator benchmark on CUDA (fp32/fp16/bf16), then a short summary table (last)
# Usage:  bash scripts/gpu_check.sh
# Env:    PYTHON (default .venv/bin/python, else python3; needs a CUDA torch, e.g. `make setup` on a CUDA
#         machine keeps the system CUDA torch), GPU_CHECK_OUT (logs, default gpu_check_out/),
#         BENCH_ARGS (extra options for `python -m flownet_ros.bench correlation`),
#         TORCH_CUDA_ARCH_LIST (optional; default: build for the GPU that is present),
#         GPU_CHECK_DEPS (default .gpu_deps: localcorr / spatial-correlation-sampler packages for an offline
#         machine, from scripts/fetch_gpu_check_deps.sh).
# Exit status 0 only if build and tests pass. Full logs stay in $GPU_CHECK_OUT.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
OUT=${GPU_CHECK_OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Build into a fresh cache folder so this run really compiles the current sources.
export FLOWNET_ROS_BUILD_DIR=${FLOWNET_ROS_BUILD_DIR:-$PWD/$OUT/build}

STEPS=(); RESULTS=(); DETAILS=()
record() { STEPS+=("$1"); RESULTS+=("$2"); DETAILS+=("$3"); echo "== $1: $2 - $3"; }
summary() {
    echo
    echo "gpu_check summary (logs in $OUT/)"
    printf '%-8s | %-6s | %s\n' step result detail
    printf '%-8s-+-%-6s-+-%s\n' -------- ------ ------------------------------------------------------------
    for i in "${!STEPS[@]}"; do printf '%-8s | %-6s | %s\n' "${STEPS[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]}"; done
}
failed=0

# 1. environment
if env_line=$("$PY" -c "import torch, sys
assert torch.cuda.is_available(), 'torch.cuda.is_available() is False'
print(torch.cuda.get_device_name(), '| CUDA', torch.version.cuda, '| torch', torch.__version__)" 2>&1); then
    record env PASS "$env_line"
else
    record env FAIL "$(echo "$env_line" | tail -1) (python: $PY)"
    summary
    exit 1
fi
cc=$("$PY" -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}{n}')")

# 1b. the public implementations to compare against (step 6), installed from $GPU_CHECK_DEPS without network:
#     fill it with scripts/fetch_gpu_check_deps.sh where PyPI can be reached (tried here if the folder is empty).
DEPS=${GPU_CHECK_DEPS:-.gpu_deps}
compgen -G "$DEPS/*" >/dev/null || bash scripts/fetch_gpu_check_deps.sh "$DEPS" >"$OUT/fetch.log" 2>&1
SITE=$PWD/$OUT/site
for dist in "$DEPS"/localcorr-*.whl "$DEPS"/spatial_correlation_sampler-*.tar.gz; do
    [ -f "$dist" ] || continue
    name=$(basename "$dist"); name=${name%%-[0-9]*}
    # --no-build-isolation: spatial-correlation-sampler compiles against this machine's torch (GPU_ARCH is its
    # own variable for -gencode); --no-deps: torch and triton are already here.
    if GPU_ARCH=$cc "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir \
        --target "$SITE" "$dist" >"$OUT/install_$name.log" 2>&1; then
        record "$name" PASS "installed from $dist"
    else
        record "$name" INFO "not installed, benchmark goes on without it: $(grep -i -m1 error "$OUT/install_$name.log" | cut -c1-120)"
    fi
done
[ -d "$SITE" ] && export PYTHONPATH="$PYTHONPATH:$SITE"

# 2. nvcc compile check of the plain .cu file (no torch headers involved)
if command -v nvcc >/dev/null 2>&1; then
    if nvcc -c -O3 -std=c++17 -I flownet_ros/ops/csrc -gencode "arch=compute_$cc,code=sm_$cc" \
        flownet_ros/ops/csrc/correlation_cuda_kernels.cu -o "$OUT/correlation_cuda_kernels.o" >"$OUT/nvcc.log" 2>&1; then
        record nvcc PASS "$(nvcc --version | tail -1), sm_$cc"
    else
        record nvcc FAIL "see $OUT/nvcc.log: $(grep -m1 -i error "$OUT/nvcc.log")"; failed=1
    fi
else
    record nvcc FAIL "nvcc not on PATH (the JIT build needs the CUDA toolkit; set CUDA_HOME)"; failed=1
fi

# 3. JIT build with CUDA kernels (forced: a failure is an error here, not a fallback)
if FLOWNET_ROS_CORRELATION_BACKEND=cuda "$PY" -m flownet_ros.ops.build --verbose --require >"$OUT/build.log" 2>&1; then
    record build PASS "$(grep -m1 '^backend=' "$OUT/build.log")"
else
    record build FAIL "see $OUT/build.log: $(grep -i -m1 'error' "$OUT/build.log" | cut -c1-150)"; failed=1
fi

# 4. tests (CUDA module + the CPU module, which includes the emulated-kernel test)
if "$PY" -m pytest test/test_correlation_cuda.py test/test_correlation.py -q -p no:cacheprovider >"$OUT/tests.log" 2>&1; then
    record tests PASS "$(tail -1 "$OUT/tests.log")"
else
    record tests FAIL "$(tail -1 "$OUT/tests.log") (see $OUT/tests.log)"; failed=1
fi

# 5. benchmark (every backend available on this machine, CPU and CUDA)
# shellcheck disable=SC2086
if "$PY" -m flownet_ros.bench correlation --markdown --json "$OUT/bench.json" ${BENCH_ARGS:-} >"$OUT/bench.log" 2>&1; then
    record bench PASS "table below and in $OUT/bench.log"
    echo
    sed -n '/^| device/,$p' "$OUT/bench.log"
else
    record bench FAIL "see $OUT/bench.log: $(tail -1 "$OUT/bench.log")"; failed=1
fi

# 6. GPU target: fwd+bwd >= 2x faster than the best of spatial-correlation-sampler / localcorr
if [ -f "$OUT/bench.json" ]; then
    target=$("$PY" - "$OUT/bench.json" <<'PYEOF'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
lines = []
for r in res:
    if r["device"] != "cuda" or not r["backend"].startswith("flownet_ros"):
        continue
    rivals = [o for o in res if o["device"] == "cuda" and o["batch"] == r["batch"]
              and o["backend"] in ("spatial-correlation-sampler", "localcorr")]
    others = [o for o in rivals if o["dtype"] == r["dtype"]]
    note = ""
    if not others:  # a rival without this precision: its users run it in float32
        others, note = [o for o in rivals if o["dtype"] == "float32"], " in float32"
    if not others:
        lines.append(f"{r['dtype']} B={r['batch']}: fwd+bwd {r['fwdbwd_ms']:.3f} ms, no competitor ran")
        continue
    best = min(others, key=lambda o: o["fwdbwd_ms"])
    ratio = best["fwdbwd_ms"] / r["fwdbwd_ms"]
    verdict = "PASS" if ratio >= 2 else "MISS"
    lines.append(f"{r['dtype']} B={r['batch']}: {ratio:.1f}x vs {best['backend']}{note} ({verdict})")
print("; ".join(lines) if lines else "no CUDA results")
PYEOF
)
    record target INFO "$target"
fi

# 7. end to end: FlowEstimator on CUDA (fp32, fp16, bf16) next to OpenCV DIS
for prec in fp32 fp16 bf16; do
    if "$PY" -m flownet_ros.bench estimator --device cuda --precision "$prec" --full-width >"$OUT/estimator_$prec.log" 2>&1; then
        record "estimator-$prec" PASS "table in $OUT/estimator_$prec.log"
        sed -n '/^| estimator/,$p' "$OUT/estimator_$prec.log"
    else
        record "estimator-$prec" FAIL "see $OUT/estimator_$prec.log: $(tail -1 "$OUT/estimator_$prec.log")"; failed=1
    fi
done

summary
exit $failed
