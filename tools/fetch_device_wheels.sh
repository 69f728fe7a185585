#!/usr/bin/env bash
# Collect cp312 manylinux wheels of what the device image lacks (dvc, hydra-core, omegaconf, pydantic
# and their dependencies) into .whl/, skipping packages the image already has (listed in the device
# tool's KINDS.md). antlr4-python3-runtime 4.9 (needed by hydra-core) has no wheel on PyPI: build it.
set -euo pipefail
cd "$(dirname "$0")/.."
image_list=${1:?usage: tools/fetch_device_wheels.sh <file listing the image packages, one per line>}
work=$(mktemp -d)
python3 -m pip wheel -q --no-deps "antlr4-python3-runtime==4.9.3" -w "$work/built"
python3 -m pip download -q "dvc==3.67.1" "hydra-core==1.3.8" "omegaconf==2.3.1" "pydantic==2.14.3" \
  --find-links "$work/built" --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux1_x86_64 -d "$work/all"
rm -rf .whl && mkdir .whl
for wheel in "$work"/all/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z_' 'a-z-')
  grep -qx "$name" "$image_list" || cp "$wheel" .whl/
done
du -sh .whl
