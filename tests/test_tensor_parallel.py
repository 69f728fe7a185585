"""Tensor-parallel units on CPU: the tiny Llama sharded over 2 torchrun ranks (gloo) gives the single process's
greedy tokens, rank 0's result records the ranks, and what cannot shard is refused before any work, in one
line naming the key. Through Ray (slow), such a unit asks for its 2 logical GPUs and is measured on both."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.repository import composed
from helpers.runs import SMALL_SWEEP

from inference_study.config import validate_params
from inference_study.environment import collect_environment
from inference_study.plan import backend_settings, bench_unit, bench_units, scenario_units
from inference_study.report.sections import results
from inference_study.run import run_unit
from inference_study.strict import ConfigError
from inference_study.tensor_parallel import RankError, launch

TWO_RANKS = "+models.tiny_llama.tensor_parallel=2"
# 1 warmup, then exactly 2 timed iterations of batch 2 (min and max requests both 4)
SHORT = ["bench.device=cpu", "bench.warmup_iterations=1", "bench.stopping.min_requests=4",
         "bench.stopping.max_requests=4", "bench.stopping.min_seconds=0"]
SHARDING_RUNGS = ["hf_eager", "hf_static"]
CELL = {"model": "tiny_llama", "batch_size": 2, "input_len": 16, "output_len": 8}


def study(*overrides: str):
    return validate_params(composed(f"sweep.backends=[{','.join(SHARDING_RUNGS)}]", *SHORT, *overrides))


def refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as refused:
        validate_params(composed(*overrides))
    assert "\n" not in str(refused.value)
    return str(refused.value)


def test_ranks_run_the_call_and_rank_zero_answers() -> None:
    assert launch("inference_study.tensor_parallel:world_size", (), 2) == 2


def test_a_failing_rank_fails_the_unit_in_one_line() -> None:
    with pytest.raises(RankError, match=r"^2 tensor-parallel ranks of inference_study\.missing:call exited 1: "
                                        r"ModuleNotFoundError: No module named 'inference_study\.missing'$"):
        launch("inference_study.missing:call", (), 2)


@pytest.mark.parametrize("backend", SHARDING_RUNGS)
def test_a_sharded_cell_gives_the_single_process_tokens(backend: str, model_dir: Path) -> None:
    environment = collect_environment()
    single = run_unit(bench_unit(study(), CELL | {"backend": backend}), model_dir, environment)
    unit = bench_unit(study(TWO_RANKS), CELL | {"backend": backend})
    sharded = run_unit(unit, model_dir, environment)

    assert single.status == sharded.status == "ok"
    assert sharded.output_ids == single.output_ids
    assert (single.model.tensor_parallel, sharded.model.tensor_parallel) == (1, 2)
    assert sharded.config_hash == unit.config_hash != single.config_hash
    assert (sharded.stopping.iterations, sharded.stopping.requests) == (2, 4)  # every rank stopped with rank 0
    assert sharded.latency.ttft_s.n == 4 and sharded.throughput.output_tokens_per_s > 0


def test_multiround_chat_on_a_sharded_model_reuses_as_on_one_process(model_dir: Path) -> None:
    """The original multi-round benchmark ran a 70B model over several GPUs: its hf arms run in ranks, each rank
    keeping its heads' share of every user's prefix cache, and reuse exactly what one process reuses."""
    chat = ["scenario=cpu", "sweep.scenarios=[multiround]", *SMALL_SWEEP]
    environment = collect_environment()
    records = {}
    for ranks in (1, 2):
        [unit] = scenario_units(validate_params(composed(*chat, f"+models.tiny_llama.tensor_parallel={ranks}")))
        result = run_unit(unit, model_dir, environment)
        assert result.status == "ok" and result.model.tensor_parallel == ranks
        records[ranks] = result.record
    assert records[2].identical_outputs and records[1].identical_outputs
    hits = {ranks: [(row.arm, row.users, row.hit_rate) for row in record.rows] for ranks, record in records.items()}
    assert hits[2] == hits[1] and any(rate for _, _, rate in hits[2])


def test_one_gpu_keeps_its_config_hash() -> None:
    """`tensor_parallel: 1` is left out of the model's identity, so results from before it existed still match."""
    unit = bench_unit(study(), CELL | {"backend": "hf_eager"})
    explicit = bench_unit(study("+models.tiny_llama.tensor_parallel=1"), CELL | {"backend": "hf_eager"})
    assert "tensor_parallel" not in unit.model.model_dump()
    assert explicit.config_hash == unit.config_hash


@pytest.mark.parametrize("ranks", [3, 4])
def test_ranks_that_do_not_divide_the_heads_are_refused(ranks: int) -> None:
    message = refusal(f"+models.tiny_llama.tensor_parallel={ranks}")
    assert message.startswith(f"params.yaml: models.tiny_llama: tensor_parallel={ranks} does not divide shape.")


def test_a_sharded_model_on_a_one_gpu_rung_is_refused() -> None:
    message = refusal(TWO_RANKS)  # the default sweep has compiled and paged rungs
    assert "models.tiny_llama.tensor_parallel: 2, but sweep.backends ['hf_static_compiled'" in message


def test_a_sharded_model_in_fresh_processes_is_refused() -> None:
    message = refusal(TWO_RANKS, *SMALL_SWEEP, "bench.processes=2")
    assert message == ("params.yaml: bench.processes: 2 fresh processes a cell, but tensor-parallel models "
                       "(tiny_llama) run as torchrun ranks; allowed: 1")


def test_scenarios_on_a_sharded_model_are_refused() -> None:
    message = refusal(TWO_RANKS, *SMALL_SWEEP, "scenario=cpu")
    assert "models.tiny_llama.tensor_parallel: 2, but sweep.scenarios ['ngram', 'kv_persist', 'kv_offload'] run on one GPU" in message


def test_tensorrt_llm_takes_the_ranks_from_the_model() -> None:
    config = validate_params(composed(TWO_RANKS, *SMALL_SWEEP, "trtllm.pytorch_models=[tiny_llama]"))
    assert backend_settings(config, "trtllm_pytorch", "tiny_llama").tensor_parallel_size == 2
    message = refusal(*SMALL_SWEEP, "+trtllm.convert.tp_size=2")
    assert "trtllm.convert.tp_size: 2; the model's tensor_parallel sets it now" in message


ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_the_executor_gives_a_sharded_unit_its_gpus(tmp_path: Path, model_dir: Path) -> None:
    from inference_study.executor import Resources, check_resources, measure_units, run_study

    [unit] = bench_units(validate_params(composed(TWO_RANKS, *SMALL_SWEEP, *SHORT[:-3],
                                                  "bench.stopping.max_seconds=1")))
    shutil.copytree(model_dir, tmp_path / "results" / "models" / "tiny_llama")
    fingerprint = collect_environment().fingerprint
    ray.init(num_cpus=2, num_gpus=2)
    try:
        with pytest.raises(ConfigError, match=r"^models\.tiny_llama\.tensor_parallel: 4 ranks need 4 GPUs of one "
                                              r"node, but no node of the Ray cluster has more than 2$"):
            check_resources(Resources(), {"tiny_llama": 4})
        bad = tmp_path / "bad"
        (bad / ".dvc").mkdir(parents=True)
        (bad / "params.yaml").write_text(yaml.safe_dump(composed("+models.tiny_llama.tensor_parallel=3", *SMALL_SWEEP)))
        refused = (r"^\S+/bad/params\.yaml: models\.tiny_llama: tensor_parallel=3 does not divide shape\."
                   r"num_attention_heads=4, shape\.num_key_value_heads=2: each rank holds whole attention and KV heads$")
        with pytest.raises(ConfigError, match=refused), pytest.MonkeyPatch.context() as mp:
            mp.chdir(bad)
            run_study(Resources())
        recorded: list[str] = []
        [outcome] = measure_units(tmp_path, {"bench@sharded": unit}, Resources(), fingerprint, recorded.append)
    finally:
        ray.shutdown()
    assert (outcome.state, recorded) == ("ok", ["bench@sharded"])
    assert sorted(outcome.placement.cuda_visible_devices.split(",")) == ["0", "1"]
    assert unit.result_path(tmp_path / "results").is_file()


def test_the_report_shows_the_gpus_of_sharded_cells_only() -> None:
    frame = pd.DataFrame([{"model": "m", "backend": "hf_eager", "gpus": ranks} for ranks in (1, 2)])
    sharded, single = "\n".join(results(frame)), "\n".join(results(frame.assign(gpus=1)))
    assert "| gpus " in sharded and "against all its GPUs" in sharded
    assert "gpus" not in single and "GPUs" not in single
