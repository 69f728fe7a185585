"""Print the requirements of pyproject.toml that this environment has no distribution of, one per line.

The container route installs the study with --no-deps into NVIDIA's image, then only what this prints,
constrained to the image's versions, so no package TensorRT-LLM pins is replaced (Containerfile, .ci/run).
"""

import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as name

have = {name(d.metadata["Name"]) for d in metadata.distributions()}
for line in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if name(Requirement(line).name) not in have:
        print(line)
