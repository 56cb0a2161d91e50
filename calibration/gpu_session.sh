#!/usr/bin/env bash
# One GPU session, rehearsed: calibrate a GPU and score the profile in under five minutes, with everything
# that matters written to $OUT (the only folder a lent device machine sends back). See calibration/README.md.
#
#   bash calibration/gpu_session.sh prepare     # here: wheels the device image lacks -> .whl/, smoke test
#   OUT=dir bash calibration/gpu_session.sh run # there (or here with DEV=cpu QUICK=1 to rehearse)
#
# run's settings (environment):
#   OUT      folder for log.txt, profile.json, time_accuracy_<dev>.json/.png, multi_gpu.json (required)
#   DEV      cuda (default), cuda:N or cpu
#   PY       the Python to use (default python3); it needs torch, numpy and scipy. timelaw is not installed:
#            the repository root goes on PYTHONPATH; pydantic comes from the carried wheels if missing
#   QUICK    1 (default): the quick calibration plan; 0: the full one (about 15 minutes on a GPU)
#   MULTI    1: also a DDP step and the all-reduce table when there are several GPUs (default 0: off)
#   CAL_BUDGET, BENCH_BUDGET  seconds for calibration / benchmark timing (each also has a hard cap)
#   SITE     where carried wheels are installed (default /tmp/timelaw-site-pyXY)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PY=${PY:-python3}
WHEELS="$ROOT/.whl"
# The device image (Python 3.12, torch 2.11) lacks pydantic and what it needs (see the device's KINDS.md);
# these are the versions this repository is developed with.
PINS="pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 typing-extensions==4.16.0"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"

pyver() { "$1" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'; }

prepare() {
    mkdir -p "$WHEELS"
    echo "== wheels for the device (CPython 3.12, x86-64) into .whl/"
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        $PLATFORMS -d "$WHEELS" $PINS || { echo "prepare: pip download failed"; return 1; }
    # pydantic-core is compiled: the Python that rehearses here may be another version than the device's.
    local p v seen=" 3.12 "
    for p in python3 "$PY"; do
        command -v "$p" >/dev/null 2>&1 || continue
        v=$(pyver "$p") || continue
        case "$seen" in *" $v "*) continue ;; esac
        seen="$seen$v "
        echo "== pydantic-core for this machine's Python $v too (for rehearsals)"
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$v" -d "$WHEELS" \
            "$(echo "$PINS" | tr ' ' '\n' | grep '^pydantic-core')" || return 1
    done
    ls -l "$WHEELS"
    # If a CPython 3.12 is at hand, check that the device's wheel set installs and imports.
    local p312
    for p312 in python3.12 "$(command -v pyenv >/dev/null && pyenv root)/versions/3.12"*/bin/python3.12; do
        if "$p312" -c 1 >/dev/null 2>&1; then
            local t
            t=$(mktemp -d)
            # shellcheck disable=SC2046
            if ! PIP_ROOT_USER_ACTION=ignore "$p312" -m pip install -q --no-index --no-deps --no-compile \
                    --no-cache-dir --target "$t" --find-links "$WHEELS" $(echo "$PINS" | sed 's/==[^ ]*//g') \
                || ! PYTHONPATH="$t" "$p312" -c "import sys, pydantic
print('== device wheels install and import on Python', sys.version.split()[0], '-> pydantic', pydantic.VERSION)"
            then
                echo "prepare: the device wheels do not install on Python 3.12"
                rm -rf "$t"
                return 1
            fi
            rm -rf "$t"
            break
        fi
    done
    git check-ignore -q "$WHEELS" || echo "prepare: WARNING .whl/ is not git-ignored (it must travel by carry)"
    echo "== smoke test here"
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" timeout 120 python3 calibration/smoke.py --device cpu
}

stage_names=(); stage_codes=(); stage_secs=()
stage() {  # stage NAME CAP_SECONDS COMMAND...: run under a hard timeout, record its exit code and time
    local name=$1 cap=$2 start rc
    shift 2
    echo
    echo "== $name (cap ${cap} s): $*"
    start=$(date +%s)
    timeout --kill-after=10 "$cap" "$@"
    rc=$?
    stage_names+=("$name"); stage_codes+=("$rc"); stage_secs+=($(( $(date +%s) - start )))
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "== $name: stopped at its cap of ${cap} s"
    return "$rc"
}

table() {
    echo
    echo "== stages"
    printf '%-22s %6s %8s\n' stage exit seconds
    local i
    for i in "${!stage_names[@]}"; do
        printf '%-22s %6s %8s\n' "${stage_names[$i]}" "${stage_codes[$i]}" "${stage_secs[$i]}"
    done
    "$PY" calibration/summary.py "$OUT" || true
    echo "== total $(( $(date +%s) - RUN_START )) s; files in $OUT:"
    ls -l "$OUT"
}

run() {
    : "${OUT:?set OUT to the folder the results go to}"
    mkdir -p "$OUT"
    DEV=${DEV:-cuda}
    QUICK=${QUICK:-1}
    MULTI=${MULTI:-0}
    RUN_START=$(date +%s)
    exec > >(tee -a "$OUT/log.txt") 2>&1
    TEE_PID=$!
    # on every exit, let tee write the last lines before the device machine collects $OUT
    trap 'exec >&- 2>&-; wait "$TEE_PID" 2>/dev/null' EXIT
    local v site quick=() threads=()
    v=$(pyver "$PY") || { echo "run: cannot run PY=$PY"; exit 2; }
    site=${SITE:-/tmp/timelaw-site-py$v}
    export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
    export PYTHONPATH="$ROOT:$site${PYTHONPATH:+:$PYTHONPATH}"
    if ! "$PY" -c "import pydantic" 2>/dev/null; then
        echo "== installing the carried wheels into $site (Python $v)"
        [ -d "$WHEELS" ] || { echo "run: pydantic is missing and there is no .whl/ (run prepare, carry .whl)"; exit 2; }
        # shellcheck disable=SC2046
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            --find-links "$WHEELS" $(echo "$PINS" | sed 's/==[^ ]*//g') || { echo "run: wheel install failed"; exit 2; }
    fi
    "$PY" -c "import pydantic, timelaw" || { echo "run: timelaw cannot be imported"; exit 2; }

    echo "== device facts"
    date -u
    if command -v nvidia-smi >/dev/null; then
        timeout 30 nvidia-smi
        timeout 30 nvidia-smi --format=csv \
            --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,temperature.gpu,power.draw,power.limit
    fi
    timeout 60 "$PY" - <<'EOF'
import platform, torch
print(f"python {platform.python_version()} at {__import__('sys').executable}; torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, threads {torch.get_num_threads()}")
print(f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, TF32 cuDNN {torch.backends.cudnn.allow_tf32}, "
      f"float32 matmul precision {torch.get_float32_matmul_precision()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"GPU {i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, sm_{p.major}{p.minor}")
EOF

    if [ "$DEV" = cpu ]; then
        threads=(--threads 1)  # one thread, timed by process CPU time: repeatable on a shared machine
        cal_budget=${CAL_BUDGET:-60}; bench_budget=${BENCH_BUDGET:-40}
    else
        cal_budget=${CAL_BUDGET:-110}; bench_budget=${BENCH_BUDGET:-50}
    fi
    [ "$QUICK" = 1 ] && quick=(--quick)
    [ "$QUICK" = 1 ] || { cal_budget=${CAL_BUDGET:-900}; bench_budget=${BENCH_BUDGET:-300}; }
    local b
    for b in "$cal_budget" "$bench_budget"; do
        case "$b" in ''|*[!0-9]*) echo "run: CAL_BUDGET and BENCH_BUDGET are whole seconds, got '$b'"; exit 2 ;; esac
    done

    stage smoke 60 "$PY" calibration/smoke.py --device "$DEV" || { echo "SMOKE TEST FAILED: stopping"; table; exit 1; }
    # The profile lands in $OUT the moment calibration ends (atomically); later stages only read it.
    stage calibrate $(( cal_budget + 40 )) "$PY" -m timelaw calibrate --device "$DEV" "${quick[@]}" "${threads[@]}" \
        --out "$OUT/profile.json" --time-budget "$cal_budget" --max-holdout-mape 1000
    if [ -f "$OUT/profile.json" ]; then
        stage accuracy $(( bench_budget + 40 )) "$PY" benchmarks/time_accuracy.py --device "$DEV" "${threads[@]}" \
            --profile "$OUT/profile.json" --out "$OUT" --time-budget "$bench_budget"
    else
        echo "== no profile: the accuracy benchmark is skipped"
    fi
    if [ "$MULTI" = 1 ] && [ "$DEV" != cpu ]; then
        stage multi-gpu 150 "$PY" calibration/multi_gpu.py --out "$OUT/multi_gpu.json" --timeout 60
    fi
    table
    local code
    for code in "${stage_codes[@]}"; do
        [ "$code" = 0 ] || { echo "== a stage failed (see the table): exit 1"; return 1; }
    done
}

case "${1:-}" in
    prepare) prepare ;;
    run) run; exit $? ;;
    *) echo "usage: bash calibration/gpu_session.sh prepare|run   (see calibration/README.md)"; exit 2 ;;
esac
