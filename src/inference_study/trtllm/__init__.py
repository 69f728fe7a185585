"""TensorRT-LLM stages and backends, written against the names recorded in its API contract.

TensorRT-LLM is optional: nothing here imports `tensorrt_llm` until a TensorRT-LLM stage or backend
actually runs, and a study that enables it on a machine without it stops before any work
(`version.preflight`). `calls` builds every argument list and keyword set passed to TensorRT-LLM, so
tests can check each name against the contract for every supported version.
"""
