#!/usr/bin/env bash
# The checks of one GPU session, in one script with a time budget (a session's GPU time is short):
#
#   1. smoke   the smoke profile end to end on CUDA (bf16 autocast), as Snakemake runs it
#   2. perf    `fusebench perf --device cuda` on the paper profile's models: the training loop against
#              a naive loop, FLOPs, and the fraction of a bf16 matmul peak measured in the same run
#   3. paper   the paper profile for whatever time is left (stopped by a timeout; finished jobs kept)
#
# Nothing here counts seeds, methods or jobs: each workflow step first writes Snakemake's dry-run plan of
# its profile (<step>-plan.txt, the jobs per rule as the profile defines them: seeds, tuning, controls,
# robustness grid), and its summary line reads how many of those jobs finished from Snakemake's own log.
#
# Everything worth reading lands in one folder: $OUT if set (the device runner brings it back), else
# results/gpu-check/. Bulky outputs (datasets, checkpoints) stay in $WORK_DIR; their result JSONs,
# tables and logs are copied over. Run from the checkout:
#
#   scripts/gpu-check.sh                              # all three, within BUDGET_S seconds
#   STEPS="perf" scripts/gpu-check.sh                 # only some of them
#
# Settings (environment): PYTHON (default .venv/bin/python if present, else python3), BUDGET_S (540),
# SMOKE_TIMEOUT_S (240), PERF_TIMEOUT_S (180), GPU_SLOTS (4: Snakemake jobs sharing the GPU at once),
# WORK_DIR (results/gpu-check-work). Exit 0 when smoke and perf pass (the paper run may time out).

set -uo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=$(mkdir -p "${OUT:-results/gpu-check}" && cd "${OUT:-results/gpu-check}" && pwd)
WORK_DIR=$(mkdir -p "${WORK_DIR:-results/gpu-check-work}" && cd "${WORK_DIR:-results/gpu-check-work}" && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
STEPS=${STEPS:-smoke perf paper}
BUDGET_S=${BUDGET_S:-540}
SMOKE_TIMEOUT_S=${SMOKE_TIMEOUT_S:-240}
PERF_TIMEOUT_S=${PERF_TIMEOUT_S:-180}
GPU_SLOTS=${GPU_SLOTS:-4}
KILL_AFTER_S=30  # after its limit a step gets TERM, then KILL this much later (Snakemake writes partial tables)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
STARTED=$SECONDS
SUMMARY="$OUT_DIR/summary.txt"
: >"$SUMMARY"

note() { echo "gpu-check: $*" | tee -a "$SUMMARY"; }

# step NAME TIMEOUT_S COMMAND...: run with a timeout, its output in NAME.log, its status in the summary
step() {
    local name=$1 limit=$2 status
    shift 2
    note "$name: started at +$((SECONDS - STARTED)) s, limit ${limit} s: $*"
    timeout --signal=TERM --kill-after="$KILL_AFTER_S" "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
    status=$?
    case $status in
        0) note "$name: ok after $((SECONDS - STARTED)) s" ;;
        124 | 137) note "$name: stopped by its ${limit} s limit (exit $status); see $name.log" ;;
        *) note "$name: FAILED (exit $status); last lines of $name.log:"; tail -n 20 "$OUT_DIR/$name.log" | tee -a "$SUMMARY" ;;
    esac
    return $status
}

# collect RUN: the small outputs of a workflow run in WORK_DIR/RUN (results, tables, plots, logs) into OUT_DIR/RUN
collect() {
    local run=$1
    [[ -d "$WORK_DIR/$run" ]] || return 0
    (cd "$WORK_DIR" && find "$run" -type f -not -path '*/data/*' -not -path '*/tokenizers/*' \
        \( -name '*.json' -o -name '*.md' -o -name '*.csv' -o -name '*.tex' -o -name '*.log' -o -name '*.png' \) \
        -size -20M -exec cp --parents {} "$OUT_DIR" \;)
}

# the workflow on CUDA: every core, GPU_SLOTS jobs sharing the GPU, the rest of the grid after a failure
SNAKEMAKE=("$PYTHON" -m snakemake --cores all --resources "gpu=$GPU_SLOTS" --keep-going)

# workflow NAME TIMEOUT_S PROFILE: the profile's run on CUDA in WORK_DIR/NAME: its plan (the jobs per rule the
# profile defines), the run, and how many of the planned jobs finished (Snakemake's last "N of M steps" line)
workflow() {
    local name=$1 limit=$2 profile=$3 status
    local args=(--configfile "workflows/config/$profile.yaml" --config device=cuda output_dir="$WORK_DIR/$name")
    "${SNAKEMAKE[@]}" "${args[@]}" --dry-run --quiet rules >"$OUT_DIR/$name-plan.txt" 2>&1 ||
        note "$name: the dry run failed (see $name-plan.txt)"
    step "$name" "$limit" "${SNAKEMAKE[@]}" "${args[@]}"
    status=$?
    note "$name: $(grep -Eo '[0-9]+ of [0-9]+ steps \([0-9]+%\) done' "$OUT_DIR/$name.log" | tail -n 1 || true)" \
        "(planned jobs per rule: $name-plan.txt)"
    collect "$name"
    return $status
}

# --- what ran, and on what -------------------------------------------------------------------------------
{
    echo "git HEAD: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "git status (tracked files that differ):"
    git status --porcelain --untracked-files=no 2>/dev/null || echo "  (not a git checkout)"
    echo "date (UTC): $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$OUT_DIR/version.txt"
git diff HEAD >"$OUT_DIR/uncommitted.diff" 2>/dev/null || true
nvidia-smi >"$OUT_DIR/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed (see nvidia-smi.txt)"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv \
    >>"$OUT_DIR/nvidia-smi.txt" 2>&1 || true
if ! "$PYTHON" -c "import sys, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0)); sys.exit(not torch.cuda.is_available())" \
    >"$OUT_DIR/torch.txt" 2>&1; then
    note "torch sees no CUDA device with $PYTHON (see torch.txt); stopping"
    exit 1
fi
note "$(cat "$OUT_DIR/torch.txt"); results in $OUT_DIR"

failed=0
for name in $STEPS; do
    case $name in
        smoke)
            workflow smoke "$SMOKE_TIMEOUT_S" smoke || failed=1
            ;;
        perf)
            step perf "$PERF_TIMEOUT_S" "$PYTHON" -m benchmark perf --config workflows/config/paper.yaml \
                --device cuda --out "$OUT_DIR/perf" || failed=1
            ;;
        paper)
            left=$((BUDGET_S - (SECONDS - STARTED) - KILL_AFTER_S))
            if ((left < 60)); then
                note "paper: skipped, ${left} s left of BUDGET_S=${BUDGET_S}"
            else
                workflow paper "$left" paper  # a timeout is expected here
            fi
            ;;
        *) note "unknown step '$name' (steps: smoke perf paper)"; failed=1 ;;
    esac
done
nvidia-smi >"$OUT_DIR/nvidia-smi-after.txt" 2>&1 || true
note "done after $((SECONDS - STARTED)) s; $( ((failed)) && echo 'a required step FAILED' || echo 'smoke and perf passed')"
exit $failed
