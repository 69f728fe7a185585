#!/usr/bin/env bash
# One GPU run of the study on the lent device machine (or any offline GPU box), as one command:
#   bash tools/device_run.sh [compose overrides...] [-- dvc repro targets...]
# e.g. bash tools/device_run.sh study=h100 'sweep.input_lens=[128]' -- bench@tinyllama_1b-hf_eager-1-128-128
# Installs the carried wheels (.whl/, see tools/fetch_device_wheels.sh), makes the copy a git repo (DVC
# needs one), composes params.yaml, runs `dvc repro` of each target in turn under one time limit
# (DEVICE_RUN_LIMIT_S, default 540 s, so a killed run still returns what it measured), and packs the results
# into $OUT/cells.tgz (the whole repro log, a failed stage's traceback included, into $OUT/dvc_repro.log).
# Results already measured stay: merge them into reports/<study>/inputs/cells/ and rebuild with
# `inference-study report --inputs reports/<study>/inputs`.
#
# One GPU only (the first, unless CUDA_VISIBLE_DEVICES says otherwise), so the environment fingerprint is
# that of a one-GPU machine of the kind. Several GPUs at once go through the Ray executor
# (`inference-study run`, README "More than one GPU"), which cannot be carried here: Ray's cp312 manylinux
# x86_64 wheel alone is 79.3 MB (ray 2.60.0), more than the device's 64 MiB carry, ~26 MB of it taken.
set -uo pipefail
source tools/device_env.sh || exit 1
[ -d .git ] || { git init -q && git add -A && git -c user.name=device -c user.email=device@localhost commit -qm device; } >/dev/null
overrides=() targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do overrides+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift && targets=("$@")
# torch.compile's portable bundles (backends/hf/compile_cache.py) travel between leases: a carried
# .compile-bundles.tgz from an earlier call's $OUT seeds this machine's cache, so its first cells start warm.
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/device-cache}
mkdir -p "$XDG_CACHE_HOME" && { [ ! -f .compile-bundles.tgz ] || tar xzf .compile-bundles.tgz -C "$XDG_CACHE_HOME"; }
python -m inference_study.cli compose "${overrides[@]}" || exit 1
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
SECONDS=0
deadline=${DEVICE_RUN_LIMIT_S:-540}
repro() {  # one `dvc repro` under what is left of the limit, its log appended to the call's
  timeout "$((deadline - SECONDS))" dvc repro --keep-going "$@" 2>&1 | tee -a "${OUT:-.}/dvc_repro.log" \
    | grep -E '^(Running stage|[a-z0-9_]+/[a-z_]+/b[0-9]+|ERROR|error)'
}
# Targets run in the order given, one `dvc repro` each (one call would order them by its own graph walk), so
# the cells that matter most go first and a limit cuts off the last ones only.
if [ ${#targets[@]} -eq 0 ]; then repro; else
  for target in "${targets[@]}"; do [ "$SECONDS" -lt "$deadline" ] && repro "$target"; done
fi
echo "dvc repro: ${SECONDS}s on GPU $CUDA_VISIBLE_DEVICES"
tar czf "${OUT:-.}/cells.tgz" results/cells results/roofline.json results/env.json
(cd "$XDG_CACHE_HOME" && find inference-study/compile -path '*/artifacts/*' -type f -print0 2>/dev/null \
  | tar czf "${OUT:-.}/compile-bundles.tgz" --null -T -)  # carry it next time as .compile-bundles.tgz
python -m inference_study.cli cells | grep -v " missing  "  # dvc.lock says which cells are done; missing: counted last
