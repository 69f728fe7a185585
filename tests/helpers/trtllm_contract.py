"""Reading the TensorRT-LLM API contract (tests/data/trtllm-api-contract.json): which names a version band may use.

A band may use a name when the contract records it under every one of the band's labels (so 0.16 to
0.21 only use names recorded at both 0.15.0 and 1.2.x). Entries come in a few shapes: a `names`
list (or a dict of lists), `names_expected` / `names_verified_from_release_notes` / `names_likely`
where the research could not read the exact file, and `added`/`removed` deltas against 1.2.x.
main-2026 records only some objects; one it does not record (RequestOutput, CompletionOutput) is
read at 1.2.x, the newest point that records it, and the first real run on main must confirm it.

A band's low end may differ from the label that stands for the band: the 1.0-1.2 band is read at 1.2.x, but
releases 1.0.x are also checked against a `1.0.0` record where the contract has one (KvCacheConfig), so a
1.2.x field reaches 1.0 only once it is recorded there. Callers that check a feature pass the first release
the feature runs on (`release`); without one the band's low end is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from inference_study.trtllm.version import Band, Flow

CONTRACT_PATH = Path(__file__).parents[1] / "data" / "trtllm-api-contract.json"
OBJECTS: dict[str, dict[str, dict]] = json.loads(CONTRACT_PATH.read_text())["objects"]
NAME_KEYS = ("names", "names_expected", "names_verified_from_release_notes", "names_likely", "committed_kwargs",
             "kwargs_names")
NEWEST_FULL_RECORD = {"main-2026": "1.2.x"}

LLM_INIT = "tensorrt_llm.LLM.__init__"
LLM_ARGS = {  # the args class whose fields the `LLM` of a label and flow accepts as keywords
    ("0.15.0", "engine"): "tensorrt_llm.llmapi.llm_utils.LlmArgs (0.15 kwargs of LLM)",
    ("1.2.x", "engine"): "tensorrt_llm.llmapi.TrtLlmArgs (kwargs of tensorrt_llm._tensorrt_engine.LLM)",
    ("1.2.x", "pytorch"): "tensorrt_llm.llmapi.TorchLlmArgs (kwargs of default LLM in 1.x)",
    ("main-2026", "pytorch"): "tensorrt_llm.llmapi.TorchLlmArgs (kwargs of default LLM in 1.x)",
}
CLASS_IDENTITY = "tensorrt_llm.LLM (class identity)"
LLM_METHODS = "tensorrt_llm.LLM (other methods/properties)"
GENERATE_ASYNC = "tensorrt_llm.LLM.generate_async"
REQUEST_OUTPUT = "tensorrt_llm.llmapi.RequestOutput"
COMPLETION_OUTPUT = "tensorrt_llm.llmapi.CompletionOutput"
BUILD_CLI = "trtllm-build CLI"
NGRAM_DECODING = "tensorrt_llm.llmapi.NGramDecodingConfig"
SPECULATIVE_UNION = "speculative_config union (LLM.__init__)"
PERF_METRICS = "CompletionOutput.request_perf_metrics"
ITERATION_STATS = "LLM.get_stats() iteration dict (IterationStats JSON)"
KV_CONNECTOR = "tensorrt_llm.llmapi.llm_args.KvCacheConnectorConfig"
CONNECTOR_SCHEDULER = "KvCacheConnectorScheduler (abstract methods)"
CONNECTOR_WORKER = "KvCacheConnectorWorker (abstract methods)"
CONNECTOR_DATA = "SchedulerOutput / RequestData (connector)"
CONVERT_CLI = {"llama": "convert_checkpoint.py (llama)", "qwen2": "convert_checkpoint.py (qwen)"}
# Labels for the low end of a band: (label, first release it covers, first release it no longer covers). An object
# the label does not record is read at the band's own labels there.
LOW_END_LABELS: dict[str, tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]] = {
    "1.0-1.2": (("1.0.0", (1, 0), (1, 1)),),
}

ObjectsOf = Callable[[str], Iterable[str]]


def _plain(name: str) -> str:
    """`save(engine_dir) [_TrtLLM only]` → `save`; `tensorrt_llm.LLM (= _TorchLLM, …)` → `tensorrt_llm.LLM`."""
    return re.split(r"[ (\[]", name, maxsplit=1)[0]


def entry(obj: str, label: str) -> dict:
    """The contract entry of `obj` at `label` (or at the newest earlier label that records it fully)."""
    entries = OBJECTS[obj]
    if label not in entries and NEWEST_FULL_RECORD.get(label) in entries:
        return entries[NEWEST_FULL_RECORD[label]]
    if label not in entries:
        raise LookupError(f"the contract records no {obj!r} at {label}")
    return entries[label]


def recorded(obj: str, label: str) -> set[str]:
    """Every name the contract records for `obj` at `label`."""
    found = entry(obj, label)
    names: set[str] = set()
    for key in NAME_KEYS:
        value = found.get(key)
        if isinstance(value, dict):
            names.update(name for group in value.values() for name in group)
        elif isinstance(value, list):
            names.update(value)
    if not names and ("added" in found or "removed" in found):
        names = (recorded(obj, "1.2.x") - set(found.get("removed", []))) | set(found.get("added", []))
    return {_plain(name) for name in names}


def objects(*names: str) -> ObjectsOf:
    """The same contract objects at every label."""
    return lambda label: names


def llm_keywords(flow: Flow) -> ObjectsOf:
    """`LLM(...)` keywords: its explicit parameters plus the fields of the label's args class."""
    return lambda label: (LLM_INIT, LLM_ARGS[(label, flow)])


def low_end_labels(band: Band, release: tuple[int, int] | None = None) -> list[str]:
    """The extra labels that hold at `release` (default: the band's low end)."""
    at = release or band.low
    return [label for label, low, high in LOW_END_LABELS.get(band.name, ()) if low <= at < high]


def allowed(band: Band, objects_of: ObjectsOf, release: tuple[int, int] | None = None) -> set[str]:
    """Names recorded under every label of the band, and under each low-end label that covers `release`."""
    per_label = [set().union(*(recorded(obj, label) for obj in objects_of(label))) for label in band.contract_labels]
    for extra in low_end_labels(band, release):
        per_label.extend(
            set().union(*(recorded(obj, extra if extra in OBJECTS[obj] else label) for obj in objects_of(label)))
            for label in band.contract_labels)
    return set.intersection(*per_label)


def unlisted(names: Iterable[str], band: Band, objects_of: ObjectsOf, release: tuple[int, int] | None = None) -> list[str]:
    """The names the contract does not record for this band (at `release`): each one is a failure."""
    return sorted(set(names) - allowed(band, objects_of, release))


def callee_objects(llm_class: str, flow: Flow) -> dict[str, ObjectsOf]:
    """Which contract objects record the keywords of each keyword-taking callee a stand-in run logs."""
    return {
        "tensorrt_llm.llmapi.KvCacheConfig": objects("tensorrt_llm.llmapi.KvCacheConfig"),
        "tensorrt_llm.SamplingParams": objects("tensorrt_llm.SamplingParams"),
        NGRAM_DECODING: objects(NGRAM_DECODING),
        KV_CONNECTOR: objects(KV_CONNECTOR),
        llm_class: llm_keywords(flow),
        f"{llm_class}.generate_async": objects(GENERATE_ASYNC),
    }
