"""A TensorRT-LLM KV cache connector that keeps prefix blocks on disk across processes (the persistent-KV write-up).

TensorRT-LLM (1.1 and 1.2) imports this module by name from `KvCacheConnectorConfig(connector_module=...)`
and builds one `PrefixHashScheduler` (in the scheduling process) and one `PrefixHashWorker` (per GPU
rank), each with the `LLM`'s args. The scheduler tells the executor how many prompt tokens it can load
from disk, beyond the blocks already on the GPU, and plans which GPU blocks to fill and which to save;
the worker copies blocks between the GPU's KV pool and `PrefixBlockStore` (trtllm/prefix_store.py).

The `LLM` that loads it must turn CUDA graphs off (`calls.kv_connector_llm_kwargs`, `TrtllmPytorch.with_kv_connector`).
The base classes, their methods and signatures are those of
`tensorrt_llm/_torch/pyexecutor/kv_cache_connector.py` as the API contract records them at 1.2.x
(tests/data/trtllm-api-contract.json, "KvCacheConnectorScheduler/Worker (abstract methods)",
"SchedulerOutput / RequestData"). The planning follows NVIDIA's example
`examples/llm-api/llm_kv_cache_connector.py` (NVIDIA/TensorRT-LLM, read at commits 03fa4701 and 0c6a62a1), with two
changes: blocks are named by the hash of their whole prefix, not of their own tokens, and the scheduler
checks each matched file before claiming it, so a damaged or foreign file is recomputed, never loaded.
The synchronous load and save follow the example (no asynchronous transfer; `get_finished` reports none).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

from inference_study.tensor_files import CacheRefused
from inference_study.trtllm.calls import (
    KV_CACHE_CONFIG_READS,
    KV_CONNECTOR_BASE_MODULE,
    KV_CONNECTOR_LLM_ARGS_READS,
    KV_CONNECTOR_SCHEDULER_BASE,
    KV_CONNECTOR_WORKER_BASE,
    LLM_REQUEST_READS,
    REQUEST_DATA_READS,
    SCHEDULER_OUTPUT_READS,
)
from inference_study.trtllm.prefix_store import PrefixBlockStore, store_from_environment

_BASES = importlib.import_module(KV_CONNECTOR_BASE_MODULE)
(_KV_CACHE_CONFIG,) = KV_CONNECTOR_LLM_ARGS_READS
(_TOKENS_PER_BLOCK,) = KV_CACHE_CONFIG_READS
(_NEW_REQUESTS,) = SCHEDULER_OUTPUT_READS
_REQUEST_ID, _NEW_TOKENS, _NEW_BLOCK_IDS, _COMPUTED_POSITION = REQUEST_DATA_READS
_LLM_REQUEST_ID, _GET_TOKENS = LLM_REQUEST_READS


def _store(llm_args: object) -> PrefixBlockStore:
    tokens_per_block = getattr(getattr(llm_args, _KV_CACHE_CONFIG), _TOKENS_PER_BLOCK)
    return store_from_environment(dict(os.environ), tokens_per_block)


@dataclass
class BlockPlan:
    """What the worker does in one executor step: (prefix hash, GPU block id) pairs to load and to save."""

    load: list[tuple[str, int]] = field(default_factory=list)
    save: list[tuple[str, int]] = field(default_factory=list)


class PrefixHashScheduler(getattr(_BASES, KV_CONNECTOR_SCHEDULER_BASE)):
    """Matches a new request's leading full blocks against the store and plans loads and saves."""

    def __init__(self, llm_args: object):
        super().__init__(llm_args)
        self.store = _store(llm_args)
        self.pending_loads: dict[int, list[str]] = {}

    def get_num_new_matched_tokens(self, request: object, num_computed_tokens: int) -> tuple[int, bool]:
        """Tokens loadable from disk beyond the `num_computed_tokens` already on the GPU (synchronously)."""
        request_id = getattr(request, _LLM_REQUEST_ID)
        self.pending_loads[request_id] = []
        size = self.store.tokens_per_block
        if num_computed_tokens % size:
            return 0, False
        for block_hash in self.store.matched_blocks(getattr(request, _GET_TOKENS)(0))[num_computed_tokens // size:]:
            try:
                self.store.load(block_hash)
            except CacheRefused:
                break  # this block and those after it are recomputed
            self.pending_loads[request_id].append(block_hash)
        return len(self.pending_loads[request_id]) * size, False

    def update_state_after_alloc(self, request: object, block_ids: list[int]) -> None:
        """Nothing to record: `build_connector_meta` reads the allocated block ids from the scheduler output."""

    def build_connector_meta(self, scheduler_output: object) -> BlockPlan:
        """Load each new request's matched blocks into its GPU blocks; save its other full prompt blocks."""
        plan = BlockPlan()
        for request in getattr(scheduler_output, _NEW_REQUESTS):
            loads = self.pending_loads.pop(getattr(request, _REQUEST_ID), [])
            block_ids = getattr(request, _NEW_BLOCK_IDS)
            hashes = self.store.block_hashes(getattr(request, _NEW_TOKENS))
            # In 1.1/1.2 computed_position counts the GPU's own cache hits only: the executor subtracts the
            # tokens the connector matched (_torch/pyexecutor/kv_cache_connector.py, build_scheduler_output,
            # stored versions 00fdcbff and 32779536), so the loads start right after them, as NVIDIA's current
            # example loads from `computed_position // block_size` (examples/llm-api/llm_kv_cache_connector.py
            # @0c6a62a1; the early @03fa4701 subtracted the loads, when computed_position still counted them).
            first_loaded = getattr(request, _COMPUTED_POSITION) // self.store.tokens_per_block
            plan.load.extend(zip(loads, block_ids[first_loaded:first_loaded + len(loads)]))
            first_saved = first_loaded + len(loads)
            plan.save.extend(zip(hashes[first_saved:], block_ids[first_saved:len(hashes)]))
        self.pending_loads.clear()
        return plan

    def request_finished(self, request: object, cache_block_ids: list[int]) -> bool:
        """False: every save completed within its step, so the executor may free the blocks now."""
        return False


class PrefixHashWorker(getattr(_BASES, KV_CONNECTOR_WORKER_BASE)):
    """Copies the planned blocks between the GPU's KV pool (one tensor, block id first) and the store."""

    def __init__(self, llm_args: object):
        super().__init__(llm_args)
        self.store = _store(llm_args)
        self.kv_cache_tensor = None

    def register_kv_caches(self, kv_cache_tensor: object) -> None:
        self.kv_cache_tensor = kv_cache_tensor

    def start_load_kv(self, stream: object) -> None:
        """Load every planned block before the forward pass (synchronously, as NVIDIA's example does)."""
        for block_hash, block_id in self.get_connector_meta().load:
            self.kv_cache_tensor[block_id].copy_(self.store.load(block_hash))

    def wait_for_layer_load(self, layer_idx: int, stream: object) -> None:
        """Nothing to wait for: `start_load_kv` loaded all layers."""

    def save_kv_layer(self, layer_idx: int, stream: object) -> None:
        """Nothing per layer: `wait_for_save` saves whole blocks after the forward pass."""

    def wait_for_save(self, stream: object) -> None:
        """After the step's forward pass has written them, save the planned blocks (existing ones are kept)."""
        stream.synchronize()
        for block_hash, block_id in self.get_connector_meta().save:
            self.store.save(block_hash, self.kv_cache_tensor[block_id])

    def get_finished(self, finished_gen_req_ids: list[int], started_loading_req_ids: list[int]
                     ) -> tuple[list[int], list[int]]:
        """No transfer outlives its step, so none finishes later."""
        return [], []
