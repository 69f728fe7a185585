"""The DVC DAG's code dependencies, derived from the import graph instead of listed by hand.

A stage listed by hand goes stale silently when its code starts importing a module its deps miss; here
each stage's deps are checked against, or rewritten to, what its code can actually import:

- `graph`: the closure over the import graph of a stage's script or `-m` module (`stage_closure`,
  `module_closure`), with the rules for what counts;
- `dvc_yaml`: each stage of dvc.yaml resolved, and what its deps fail to cover (`missing_deps`);
- `rewrite`: each stage's src/ deps rewritten to the closure, touching nothing else (`derive_deps`);
- `function_imports`: the imports made inside functions (`function_level_imports`), for the rule that
  only heavy optional packages are imported there;
- `cli`: `inference-study dag --check` or `--write`, also `python -m inference_study.dag`.
"""

from inference_study.dag.cli import add_arguments, main, run
from inference_study.dag.dvc_yaml import missing_deps, unignored_bytecode
from inference_study.dag.function_imports import function_level_imports
from inference_study.dag.graph import module_closure, namespace_portions, stage_closure
from inference_study.dag.rewrite import derive_deps

__all__ = ["add_arguments", "derive_deps", "function_level_imports", "main", "missing_deps",
           "module_closure", "namespace_portions", "run", "stage_closure", "unignored_bytecode"]
