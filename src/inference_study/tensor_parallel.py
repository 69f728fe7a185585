"""Tensor-parallel units: a model sharded over N GPUs of one node runs its unit as N ranks under torchrun.

Every rank runs the same unit (transformers' `tp_plan="auto"` shards the weights, and each forward pass's
collectives keep the ranks in step); rank 0 times it, and its result is the unit's. A timed loop's decision
to stop is rank 0's, sent to every rank after each iteration (outside the timed region), so all ranks run
the same number of iterations. The launcher runs torchrun as a child process and waits for it: a rank
that fails ends the others (torchrun's elastic agent) and the unit with one line naming the failure.
"""

from __future__ import annotations

import os
import pickle
import pkgutil
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TypeVar

Decision = TypeVar("Decision")
RANK_ENV = "INFERENCE_STUDY_TENSOR_PARALLEL"  # set in every rank, so a rank runs its unit instead of launching


class RankError(RuntimeError):
    """A rank of a tensor-parallel unit failed; the message is the failure's last line."""


def inside_ranks() -> bool:
    """Whether this process is a rank of a tensor-parallel unit that the launcher started."""
    return os.environ.get(RANK_ENV) == "1"


def world_size() -> int:
    """The ranks this unit is sharded over: 1 outside a tensor-parallel launch."""
    if not inside_ranks():
        return 1
    import torch.distributed as dist  # heavy: only a rank of a tensor-parallel unit needs it

    return dist.get_world_size() if dist.is_initialized() else 1


def rank_zero() -> bool:
    """Whether this process times and reports (every process outside a tensor-parallel launch does)."""
    if world_size() == 1:
        return True
    import torch.distributed as dist  # heavy: only a rank of a tensor-parallel unit needs it

    return dist.get_rank() == 0


def agree(decision: Decision) -> Decision:
    """Rank 0's `decision` on every rank (a loop's reason to stop, or None to go on); `decision` itself when
    there is one rank."""
    if world_size() == 1:
        return decision
    import torch.distributed as dist  # heavy: only a rank of a tensor-parallel unit needs it

    box = [decision]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def launch(target: str, args: tuple[Any, ...], ranks: int) -> Any:
    """`target(*args)` ("module:function") run by `ranks` processes under torchrun on this node, each on its
    own GPU (its LOCAL_RANK among CUDA_VISIBLE_DEVICES) or on the CPU with gloo; rank 0's return value."""
    with tempfile.TemporaryDirectory(prefix="inference-study-ranks-") as folder:
        call, answer = Path(folder) / "call.pkl", Path(folder) / "rank0.pkl"
        call.write_bytes(pickle.dumps((target, args)))
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
                "-m", __name__, str(call), str(answer)]
        done = subprocess.run(argv, env={**os.environ, RANK_ENV: "1"}, stderr=subprocess.PIPE,
                              text=True, check=False)
        if done.returncode or not answer.is_file():
            sys.stderr.write(done.stderr)
            raise RankError(f"{ranks} tensor-parallel ranks of {target} exited {done.returncode}: "
                            f"{_last_error(done.stderr)}")
        return pickle.loads(answer.read_bytes())


def _last_error(log: str) -> str:
    """The line of the first failing rank's traceback that names its error (torchrun's own summary, a
    ChildFailedError, follows it)."""
    found = [match.group(2) for match in re.finditer(r"^(\[rank\d+\]:\s*)?([\w.]*(?:Error|Exception): .*)$", log, re.MULTILINE)
             if "ChildFailedError" not in match.group(2)]
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return (found or lines[-1:] or ["no output"])[0]


def _rank_main(call: Path, answer: Path) -> None:
    """One rank: join the process group, run the call, and (rank 0) leave its value for the launcher."""
    import torch  # heavy: only a rank of a tensor-parallel unit needs it
    import torch.distributed as dist  # heavy: only a rank of a tensor-parallel unit needs it

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        target, args = pickle.loads(call.read_bytes())
        value = pkgutil.resolve_name(target)(*args)
        if dist.get_rank() == 0:
            partial = answer.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(value))
            partial.replace(answer)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(Path(sys.argv[1]), Path(sys.argv[2]))
