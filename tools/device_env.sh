# Source this on a GPU box that has torch but no network (the lent device machine):
# installs the carried wheels of .whl/ (dvc, hydra-core, omegaconf, pydantic and what they need)
# into /tmp/site, puts the project on PYTHONPATH, and makes `python` and `dvc` resolvable.
# Build .whl/ first with tools/fetch_device_wheels.sh.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PATH="/tmp/site/bin:$PATH"
command -v python >/dev/null || ln -sf "$(command -v python3)" /usr/local/bin/python
export PYTHONUNBUFFERED=1 CI=1 HF_HUB_OFFLINE=1
