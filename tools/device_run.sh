#!/usr/bin/env bash
# One GPU run of the study on the lent device machine (or any offline GPU box), as one command:
#   bash tools/device_run.sh [compose overrides...] [-- dvc repro targets...]
# e.g. bash tools/device_run.sh study=h100 'sweep.input_lens=[128]' -- bench@tinyllama_1b-hf_eager-1-128-128
# Installs the carried wheels (.whl/, see tools/fetch_device_wheels.sh), makes the copy a git repo (DVC
# needs one), composes params.yaml, runs `dvc repro` under a time limit (DEVICE_RUN_LIMIT_S, default
# 540 s, so a killed run still returns what it measured), and packs the results into $OUT/cells.tgz (the
# whole repro log, a failed stage's traceback included, into $OUT/dvc_repro.log).
# Results already measured stay: merge them into reports/<study>/inputs/cells/ and rebuild with
# `inference-study report --inputs reports/<study>/inputs`.
#
# On a machine of several GPUs the bench cells (the targets, or every bench stage of the DAG) are dealt
# round-robin to one copy of the repository per GPU, each pinned to its GPU with CUDA_VISIBLE_DEVICES and
# running its own `dvc repro` (DVC runs one repro per repository at a time): one cell per GPU at once,
# never two on one GPU; the first GPU also measures the roofline. Their results are merged before packing;
# the report is left to the merge.
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
limit=${DEVICE_RUN_LIMIT_S:-540}
progress='^(Running stage|[a-z0-9_]+/[a-z_]+/b[0-9]+|ERROR|error)'
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
SECONDS=0
repos=(.)
if [ "${gpus:-0}" -le 1 ]; then
  timeout "$limit" dvc repro --keep-going "${targets[@]}" 2>&1 | tee "${OUT:-.}/dvc_repro.log" | grep -E "$progress"
else
  [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(dvc stage list --name-only | grep '^bench@')
  repos=()
  for ((gpu = 0; gpu < gpus; gpu++)); do
    share=()
    [ "$gpu" -eq 0 ] && share+=(roofline)
    for ((i = gpu; i < ${#targets[@]}; i += gpus)); do share+=("${targets[i]}"); done
    [ ${#share[@]} -gt 0 ] || continue
    copy=/tmp/study-gpu$gpu && rm -rf "$copy" && cp -a . "$copy" && rm -rf "$copy/results/cells" && repos+=("$copy")
    (cd "$copy" && CUDA_VISIBLE_DEVICES=$gpu timeout "$limit" dvc repro --keep-going "${share[@]}" 2>&1 \
      | grep -E "$progress" | sed "s/^/[gpu $gpu] /") &
  done
  wait
  mkdir -p results/cells
  for copy in "${repos[@]}"; do  # cells are dealt disjointly, and a cell measured now replaces an older one
    cp -r "$copy"/results/cells/. results/cells/ 2>/dev/null
  done
  cp "${repos[0]}"/results/{roofline,env}.json results/  # the first GPU measured the roofline
fi
echo "dvc repro: ${SECONDS}s on ${gpus:-0} GPU(s)"
tar czf "${OUT:-.}/cells.tgz" results/cells results/roofline.json results/env.json
(cd "$XDG_CACHE_HOME" && find inference-study/compile -path '*/artifacts/*' -type f -print0 2>/dev/null \
  | tar czf "${OUT:-.}/compile-bundles.tgz" --null -T -)  # carry it next time as .compile-bundles.tgz
for repo in "${repos[@]}"; do  # each repository's own dvc.lock says which of its cells are done
  (cd "$repo" && python -m inference_study.cli cells | grep -v " missing  ")
done  # missing cells: counted on each last line
