#!/usr/bin/env bash
# One GPU run of the study on the lent device machine (or any offline GPU box), as one command:
#   bash tools/device_run.sh [compose overrides...] [-- dvc repro targets...]
# e.g. bash tools/device_run.sh study=h100 'sweep.input_lens=[128]' -- bench@tinyllama_1b-hf_eager-1-128-128
# Installs the carried wheels (.whl/, see tools/fetch_device_wheels.sh), makes the copy a git repo (DVC
# needs one), composes params.yaml, runs `dvc repro` under a time limit (DEVICE_RUN_LIMIT_S, default
# 540 s, so a killed run still returns what it measured), and packs the results into $OUT/cells.tgz.
# Results already measured stay: merge them into reports/<study>/inputs/cells/ and rebuild with
# `inference-study report --inputs reports/<study>/inputs`.
set -uo pipefail
source tools/device_env.sh || exit 1
[ -d .git ] || { git init -q && git add -A && git -c user.name=device -c user.email=device@localhost commit -qm device; } >/dev/null
overrides=() targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do overrides+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift && targets=("$@")
python -m inference_study.cli compose "${overrides[@]}" || exit 1
SECONDS=0
timeout "${DEVICE_RUN_LIMIT_S:-540}" dvc repro "${targets[@]}" 2>&1 | grep -E "^(Running stage|[a-z0-9_]+/[a-z_]+/b[0-9]+|ERROR|error)"
echo "dvc repro: ${SECONDS}s"
tar czf "${OUT:-.}/cells.tgz" results/cells results/roofline.json results/env.json
python -m inference_study.cli cells | grep -v " missing  " || true  # missing cells: counted on the last line
