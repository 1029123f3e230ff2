#!/bin/bash
# The warm worker's benchmark (docs/running.md): the smoke profile through Snakemake with warm_start on, then off,
# each in a fresh folder; prints each wall time and whether its main.csv equals tests/fixtures/smoke_main.csv.
#   bash scripts/warm_start_benchmark.sh [OUT_FOLDER]     (default: a new temporary folder)
set -u
cd "$(dirname "$0")/.."
OUT=${1:-$(mktemp -d)}
PY=${PYTHON:-.venv/bin/python}
for mode in True False; do
  W=$OUT/warm_start_$mode; rm -rf "$W"; mkdir -p "$W"; cp -r baselines "$W/baselines"
  start=$(date +%s.%N)
  FUSEBENCH_BASELINES=$W/baselines HF_HUB_OFFLINE=1 $PY -m snakemake --snakefile Snakefile --cores 2 \
    --directory "$W" --configfile workflows/config/smoke.yaml --config warm_start=$mode > "$W/snakemake.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  same=$($PY - "$W/results/smoke/tables/main.csv" <<'PYEOF'
import sys
import pandas as pd
keys = ["dataset", "method", "seed", "task", "metric", "corruption", "severity"]
def table(path):
    frame = pd.read_csv(path, comment="#")
    frame["seed"] = frame["seed"].fillna(-1).astype(int)
    return frame.set_index(keys).sort_index()
try:
    a, b = table("tests/fixtures/smoke_main.csv"), table(sys.argv[1])
    pd.testing.assert_series_equal(a["value"], b["value"], check_exact=True)
    print("main.csv equals the fixture")
except Exception as exc:
    print(f"main.csv DIFFERS from the fixture: {str(exc)[:200]}")
PYEOF
)
  echo "warm_start=$mode exit=$rc wall=$(echo "$end - $start" | bc) s; $same"
done
