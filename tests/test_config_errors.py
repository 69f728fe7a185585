"""Bad configurations are stopped by `validate_params` with a message naming the key and the value.

Every case starts from the composed default params (conf/ → compose_yaml, exactly what `params.yaml`
holds) and changes one value.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers.repository import cells
import yaml

from helpers.repository import REPO_ROOT
from inference_study.compose import compose_yaml, drift, write_params
from inference_study.plan import backend_settings, bench_unit
from inference_study.config import ConfigError, StudyConfig, validate_params

REPO = REPO_ROOT


@pytest.fixture(scope="module")
def default_raw() -> dict[str, Any]:
    """The composed default params (conf/ with no overrides), as the stages would read them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return yaml.safe_load(compose_yaml([]))


@pytest.fixture
def raw(default_raw: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(default_raw)


def _get(raw: dict[str, Any], path: str) -> Any:
    node: Any = raw
    for part in path.split("."):
        node = node[part]
    return node


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set one value; refuse a 'mutation' that changes nothing (the case would then test nothing)."""
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    assert node.get(leaf, object()) != value, f"{path} already is {value!r}"
    node[leaf] = value


def _max_seq_len(raw: dict[str, Any]) -> int:
    return raw["models"]["tiny_llama"]["max_seq_len"]


def _over_max_seq_len(raw: dict[str, Any]) -> tuple[str, ...]:
    """Make input + output exceed tiny_llama's max_seq_len by exactly one token."""
    assert raw["sweep"]["models"] == ["tiny_llama"]
    limit = _max_seq_len(raw)
    output = max(raw["sweep"]["output_lens"])
    _set(raw, "sweep.input_lens", [limit - output + 1])
    return (str(limit + 1), f"models.tiny_llama.max_seq_len={limit}")


def _hf_without_revision(raw: dict[str, Any]) -> tuple[str, ...]:
    """tinyllama_1b names its hub repo; switch it to the hub but drop the pinned revision."""
    assert raw["models"]["tinyllama_1b"]["hf_repo_id"]
    _set(raw, "models.tinyllama_1b.source", "hf")
    _set(raw, "models.tinyllama_1b.revision", None)
    return ("source='hf'", "'revision'")


def _paged_pool_one_block_short(raw: dict[str, Any]) -> tuple[str, ...]:
    """Put hf_paged in the sweep with a pool one block smaller than its largest cell needs."""
    paged = raw["backends"]["hf_paged"]
    sweep = raw["sweep"]
    blocks_per_request = -(-(max(sweep["input_lens"]) + max(sweep["output_lens"])) // paged["block_size"])
    needed = max(sweep["batch_sizes"]) * blocks_per_request
    _set(raw, "sweep.backends", [*sweep["backends"], "hf_paged"])
    _set(raw, "backends.hf_paged.num_blocks", needed - 1)
    return (f"{needed - 1} blocks", f"needs {needed} blocks", f"allowed: >= {needed}")


def _paged_step_below_batch(raw: dict[str, Any]) -> tuple[str, ...]:
    """hf_paged in the sweep with fewer tokens per step than the largest batch decodes at once."""
    batch = max(raw["sweep"]["batch_sizes"])
    _set(raw, "sweep.backends", [*raw["sweep"]["backends"], "hf_paged"])
    _set(raw, "backends.hf_paged.max_batch_tokens", batch - 1)
    return (f"cannot decode batch {batch}", f"allowed: >= {batch}")


def _setter(path: str, value: Any, *fragments: str) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    def mutate(raw: dict[str, Any]) -> tuple[str, ...]:
        _set(raw, path, value)
        return fragments

    return mutate


def _rename(path: str, new_leaf: str, *fragments: str) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    """Rename one key (a typo), keeping its value."""

    def mutate(raw: dict[str, Any]) -> tuple[str, ...]:
        *parents, leaf = path.split(".")
        node = _get(raw, ".".join(parents)) if parents else raw
        assert leaf in node and new_leaf not in node
        node[new_leaf] = node.pop(leaf)
        return fragments

    return mutate


EXTRA = "Extra inputs are not permitted"

TARGET = {"name": "bar", "metric": "mbu_pct", "at_least": 50,
          "cell": {"model": "tiny_llama", "backend": "hf_eager", "batch_size": 1, "input_len": 32, "output_len": 16}}

# (id, mutation returning the fragments the message must contain besides the key, key path)
CASES = [
    # a cell's identity is strict: DVC names the stage after the raw value, so no coercion
    pytest.param(_setter("sweep.batch_sizes", [2.0], "got 2.0", "valid integer"), "sweep.batch_sizes.0",
                 id="batch-float"),
    pytest.param(_setter("sweep.batch_sizes", [True], "got True", "valid integer"), "sweep.batch_sizes.0",
                 id="batch-bool"),
    pytest.param(_setter("sweep.input_lens", [16.0], "got 16.0", "valid integer"), "sweep.input_lens.0",
                 id="input-float"),
    pytest.param(_setter("sweep.output_lens", ["16"], "got '16'", "valid integer"), "sweep.output_lens.0",
                 id="output-string"),
    pytest.param(_setter("bench.stopping.min_requests", 2.0, "got 2.0", "valid integer"),
                 "bench.stopping.min_requests", id="min-requests-float"),
    # a fixed count is the old protocol: refused in a new study, with what to do instead
    pytest.param(_setter("bench.iterations", 10, "fixed count", "bench.stopping"), "bench.iterations",
                 id="fixed-iterations"),
    pytest.param(_setter("bench.stopping.max_requests", 5, "max_requests 5 is under min_requests"),
                 "bench.stopping", id="max-requests-under-min"),
    pytest.param(_setter("bench.stopping.max_seconds", 0.1, "max_seconds 0.1 is under min_seconds"),
                 "bench.stopping", id="max-seconds-under-min"),
    pytest.param(_setter("bench.stopping.target_half_width", 0, "got 0", "greater than 0"),
                 "bench.stopping.target_half_width", id="target-zero"),
    pytest.param(_setter("bench.stopping.target_half_width", -0.1, "got -0.1", "greater than 0"),
                 "bench.stopping.target_half_width", id="target-negative"),
    pytest.param(_setter("bench.stopping.max_seconds", float("inf"), "got inf", "finite"),
                 "bench.stopping.max_seconds", id="max-seconds-inf"),
    pytest.param(_setter("bench.processes", 0, "got 0", "greater than 0"), "bench.processes", id="processes-zero"),
    pytest.param(_setter("sweep.batch_sizes", 4, "got 4", "valid list"), "sweep.batch_sizes",
                 id="scalar-for-a-list"),
    pytest.param(_setter("bench.max_cv", float("inf"), "got inf", "finite"), "bench.max_cv", id="max-cv-inf"),
    pytest.param(_setter("sweep.batch_sizes", [0], "got 0", "greater than 0"), "sweep.batch_sizes.0",
                 id="batch-zero"),
    pytest.param(lambda raw: (raw["models"].update({"tiny llama": raw["models"]["tiny_llama"]}), "'tiny llama'")[1:],
                 "models", id="model-name-with-a-space"),
    pytest.param(_setter("sweep.batch_sizes", [1, -3], "got -3", "greater than 0"), "sweep.batch_sizes.1",
                 id="batch-negative"),
    pytest.param(_setter("sweep.batch_sizes", [1, 1], "unique", "[1]"), "sweep.batch_sizes",
                 id="batch-repeated"),
    pytest.param(_setter("sweep.output_lens", [1], "got 1", "greater than or equal to 2"), "sweep.output_lens.0",
                 id="output-len-1"),
    pytest.param(_setter("sweep.input_lens", [0], "got 0", "greater than 0"), "sweep.input_lens.0",
                 id="input-len-0"),
    pytest.param(_setter("sweep.batch_sizes", "4", "'4'", "valid list"), "sweep.batch_sizes",
                 id="batch-not-a-list"),
    pytest.param(_setter("sweep.batch_sizes", [1.5], "1.5", "integer"), "sweep.batch_sizes.0",
                 id="batch-fractional"),
    pytest.param(_setter("sweep.backends", ["hf_eager", "vllm"], "'vllm'", "hf_eager", "hf_static_compiled"),
                 "sweep.backends", id="unknown-backend-in-sweep"),
    pytest.param(_setter("sweep.models", ["gpt5"], "'gpt5'", "tiny_llama", "qwen2_5_7b"), "sweep.models",
                 id="unknown-model-in-sweep"),
    pytest.param(_over_max_seq_len, "sweep.input_lens", id="input-plus-output-over-max-seq-len"),
    *[
        pytest.param(_setter(f"sweep.{key}", [], "at least 1 item"), f"sweep.{key}", id=f"empty-sweep-{key}")
        for key in ("models", "backends", "batch_sizes", "input_lens", "output_lens")
    ],
    pytest.param(_setter("models.tiny_llama.dtype", "float8", "'float8'", "'float32'", "'float16'", "'bfloat16'"),
                 "models.tiny_llama.dtype", id="unknown-dtype"),
    pytest.param(_setter("models.tiny_llama.source", "s3", "'s3'", "'random'", "'hf'", "'local'"),
                 "models.tiny_llama.source", id="unknown-source"),
    pytest.param(_setter("models.tiny_llama.source", "hf", "source='hf'", "'hf_repo_id'"), "models.tiny_llama",
                 id="hf-without-repo-id"),
    pytest.param(_hf_without_revision, "models.tinyllama_1b", id="hf-without-revision"),
    pytest.param(_setter("models.tiny_llama.source", "local", "source='local'", "'local_path'"),
                 "models.tiny_llama", id="local-without-path"),
    pytest.param(_setter("models.tiny_llama.shape", None, "source='random'", "'shape'"), "models.tiny_llama",
                 id="random-without-shape"),
    pytest.param(_setter("models.tiny_llama.architecture", "mamba", "'mamba'", "'llama'", "'qwen2'"),
                 "models.tiny_llama.architecture", id="unknown-architecture"),
    pytest.param(_setter("models.tiny_llama.max_seq_len", 0, "got 0", "greater than 0"),
                 "models.tiny_llama.max_seq_len", id="max-seq-len-zero"),
    pytest.param(_rename("models.tiny_llama.dtype", "dtpye", EXTRA), "models.tiny_llama.dtpye",
                 id="typo-in-model-spec"),
    pytest.param(_rename("models.tiny_llama.shape.hidden_size", "hidden_sise", EXTRA),
                 "models.tiny_llama.shape.hidden_sise", id="typo-in-model-shape"),
    pytest.param(_setter("bench.warmup_iterations", -1, "got -1", "greater than or equal to 0"),
                 "bench.warmup_iterations", id="warmup-negative"),
    pytest.param(_setter("bench.device", "tpu", "'tpu'", "'auto'", "'cpu'", "'cuda'"), "bench.device",
                 id="unknown-device"),
    pytest.param(_rename("bench.stopping.min_seconds", "min_second", EXTRA, "got 0.5"),
                 "bench.stopping.min_second", id="typo-in-bench"),
    pytest.param(_setter("bench.gpu_sample_interval_ms", 0, "got 0", "greater than 0"),
                 "bench.gpu_sample_interval_ms", id="gpu-sample-interval-zero"),
    pytest.param(_rename("sweep.batch_sizes", "batch_size", EXTRA), "sweep.batch_size", id="typo-in-sweep"),
    pytest.param(_rename("sweep", "sweeps", EXTRA), "sweeps", id="typo-top-level-section"),
    pytest.param(_setter("backends.hf_static_compiled.compile_mode", "turbo", "'turbo'", "'default'",
                         "'reduce-overhead'", "'max-autotune'"),
                 "backends.hf_static_compiled.compile_mode", id="bad-compile-mode"),
    pytest.param(_setter("backends.hf_static_compiled.max_cache_len", 0, "got 0", "greater than 0"),
                 "backends.hf_static_compiled.max_cache_len", id="max-cache-len-zero"),
    # shorter than the sweep's longest cell: refused before any work, not in the stage after DVC removed its output
    pytest.param(_setter("backends.hf_static_compiled.max_cache_len", 64, "64 is shorter", ">= 144"),
                 "backends.hf_static_compiled.max_cache_len", id="max-cache-len-short"),
    pytest.param(_setter("backends.hf_eager.attn_implementation", "flash_attention_3", "'flash_attention_3'",
                         "'sdpa'", "'eager'"),
                 "backends.hf_eager.attn_implementation", id="unknown-attn-implementation"),
    pytest.param(_setter("backends.hf_eager.compile_mode", "default", EXTRA), "backends.hf_eager.compile_mode",
                 id="setting-of-another-backend"),
    pytest.param(_setter("backends.trtllm", {}, "unknown backend", "hf_eager", "hf_static_compiled"),
                 "backends.trtllm", id="unknown-backend-section"),
    pytest.param(_setter("backends.hf_paged.num_blocks", 0, "got 0", "greater than 0"),
                 "backends.hf_paged.num_blocks", id="paged-pool-empty"),
    pytest.param(_setter("backends.hf_paged.block_size", 2, "got 2", "greater than or equal to 4"),
                 "backends.hf_paged.block_size", id="paged-block-below-transformers-minimum"),
    pytest.param(_setter("backends.hf_paged.attn_implementation", "sdpa_paged", "'sdpa_paged'",
                         "'paged|sdpa'"),
                 "backends.hf_paged.attn_implementation", id="paged-pre-5-attn-name"),
    pytest.param(_paged_pool_one_block_short, "backends.hf_paged.num_blocks",
                 id="paged-pool-below-largest-cell"),
    pytest.param(_paged_step_below_batch, "backends.hf_paged.max_batch_tokens", id="paged-step-below-batch"),
    # a variant's fixed setting is its meaning: set otherwise, the variant would be mislabelled
    pytest.param(_setter("backends.hf_paged_graphs.use_cuda_graph", False, "False", "hf_paged_graphs", "True"),
                 "backends.hf_paged_graphs.use_cuda_graph", id="variant-contradicts-its-fixed-setting"),
    pytest.param(_setter("backends.hf_paged_graphs_compiled.compile_level", 2, "2", "fixes compile_level", "1"),
                 "backends.hf_paged_graphs_compiled.compile_level", id="variant-contradicts-second-fixed-setting"),
    pytest.param(_setter("study.name", "Default", "'Default'"), "study.name", id="study-name-uppercase"),
    pytest.param(_setter("study.name", "my study", "'my study'"), "study.name", id="study-name-space"),
    pytest.param(_setter("study.name", "", "''"), "study.name", id="study-name-empty"),
    pytest.param(_setter("study.targets", [TARGET | {"cell": TARGET["cell"] | {"model": "llama_70b"}}],
                         "'llama_70b'", "tiny_llama"), "study.targets.0.cell", id="target-unknown-model"),
    pytest.param(_setter("study.targets", [TARGET | {"metric": "joules"}], "'joules'", "'mbu_pct'"),
                 "study.targets.0.metric", id="target-unknown-metric"),
    pytest.param(_setter("scenarios.kv_offload.backends", ["vllm"], "'vllm'", "'hf'", "'trtllm_pytorch'"),
                 "scenarios.kv_offload.backends", id="kv-offload-unknown-backend"),
    pytest.param(_setter("study.setup_share_at_most_pct", 150, "got 150", "less than or equal to 100"),
                 "study.setup_share_at_most_pct", id="setup-share-over-100"),
]


def test_default_params_are_valid(default_raw: dict[str, Any]) -> None:
    """The base every case mutates is itself valid, so each failure below comes from its one change."""
    config = validate_params(copy.deepcopy(default_raw))
    assert isinstance(config, StudyConfig)
    assert cells(config), "the default sweep has cells"


@pytest.mark.parametrize(("mutate", "key"), CASES)
def test_bad_value_is_rejected_naming_key_and_value(
    raw: dict[str, Any], mutate: Callable[[dict[str, Any]], tuple[str, ...]], key: str
) -> None:
    fragments = mutate(raw)
    with pytest.raises(ConfigError) as caught:
        validate_params(raw)
    message = str(caught.value)
    assert message.startswith("params.yaml: ") and "\n" not in message, "one line, naming the file"
    assert key in message, f"key path {key!r} not in:\n{message}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 20


def test_length_at_exactly_max_seq_len_is_accepted(raw: dict[str, Any]) -> None:
    """The boundary of the length check: input + output == max_seq_len is allowed, one more is not."""
    limit = _max_seq_len(raw)
    raw["sweep"]["input_lens"] = [limit - max(raw["sweep"]["output_lens"])]
    validate_params(raw)
    raw["sweep"]["input_lens"] = [limit - max(raw["sweep"]["output_lens"]) + 1]
    with pytest.raises(ConfigError):
        validate_params(raw)


def test_every_error_is_reported_not_only_the_first(raw: dict[str, Any]) -> None:
    raw["bench"]["stopping"]["min_requests"] = 0
    raw["bench"]["device"] = "tpu"
    raw["models"]["tiny_llama"]["dtype"] = "float8"
    with pytest.raises(ConfigError) as caught:
        validate_params(raw)
    message = str(caught.value)
    for key in ("bench.stopping.min_requests", "bench.device", "models.tiny_llama.dtype"):
        assert key in message


# ---------------------------------------------------------------- plan.bench_unit


@pytest.fixture
def study(default_raw: dict[str, Any]) -> StudyConfig:
    return validate_params(copy.deepcopy(default_raw))


def _cell(**changes: Any) -> dict[str, Any]:
    cell = {"model": "tiny_llama", "backend": "hf_eager", "batch_size": 1, "input_len": 16, "output_len": 4}
    cell.update(changes)
    return cell


def test_validate_cell_accepts_a_good_cell(study: StudyConfig) -> None:
    cell = bench_unit(study, _cell()).cell
    assert cell.key == "tiny_llama/hf_eager/b1_i16_o4"


def test_validate_cell_unknown_backend(study: StudyConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        bench_unit(study, _cell(backend="vllm"))
    message = str(caught.value)
    assert "cell.backend" in message and "'vllm'" in message
    assert "hf_eager" in message and "hf_static_compiled" in message


def test_validate_cell_unknown_model(study: StudyConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        bench_unit(study, _cell(model="gpt5"))
    message = str(caught.value)
    assert "cell.model" in message and "'gpt5'" in message and "tiny_llama" in message


def test_validate_cell_length_over_max_seq_len(study: StudyConfig) -> None:
    limit = study.models["tiny_llama"].max_seq_len
    bench_unit(study, _cell(input_len=limit - 4, output_len=4))  # exactly at the limit: fine
    with pytest.raises(ConfigError) as caught:
        bench_unit(study, _cell(input_len=limit - 3, output_len=4))
    message = str(caught.value)
    assert "cell.input_len" in message
    assert str(limit - 3) in message and f"models.tiny_llama.max_seq_len={limit}" in message


def test_validate_cell_paged_pool_too_small(study: StudyConfig) -> None:
    """A cell given on the command line is checked against hf_paged's pool, not only the sweep's cells."""
    pool = backend_settings(study, "hf_paged", "tiny_llama")
    tokens = pool.num_blocks * pool.block_size
    batch = 4  # each request's share of the pool stays under tiny_llama's max_seq_len
    fits = tokens // batch - 4
    bench_unit(study, _cell(backend="hf_paged", batch_size=batch, input_len=fits, output_len=4))
    with pytest.raises(ConfigError) as caught:  # one token more per request: one more block each
        bench_unit(study, _cell(backend="hf_paged", batch_size=batch, input_len=fits + 1, output_len=4))
    message = str(caught.value)
    assert "backends.hf_paged.num_blocks" in message
    assert f"needs {pool.num_blocks + batch} blocks" in message


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"batch_size": 0}, "cell.batch_size", "got 0"),
        ({"output_len": 1}, "cell.output_len", "got 1"),
        ({"input_len": -5}, "cell.input_len", "got -5"),
        ({"output_len": None}, "cell.output_len", "valid integer"),
    ],
    ids=["batch-zero", "output-len-1", "input-negative", "output-len-none"],
)
def test_validate_cell_bad_coordinates(study: StudyConfig, changes: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        bench_unit(study, _cell(**changes))
    message = str(caught.value)
    assert message.startswith("invalid cell:")
    assert key in message
    assert fragment in message


def test_validate_cell_missing_coordinate(study: StudyConfig) -> None:
    cell = _cell()
    del cell["output_len"]
    with pytest.raises(ConfigError) as caught:
        bench_unit(study, cell)
    assert "cell.output_len" in str(caught.value) and "Field required" in str(caught.value)


# ---------------------------------------------------------------- Hydra overrides


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ("bench.device=tpu", "bench.device", "'tpu'"),
        ("bench.stopping.min_requests=0", "bench.stopping.min_requests", "got 0"),
        ("backends.hf_static_compiled.compile_mode=turbo", "backends.hf_static_compiled.compile_mode", "'turbo'"),
        ("sweep.backends=[hf_eager,vllm]", "sweep.backends", "'vllm'"),
        ("sweep.models=[gpt5]", "sweep.models", "'gpt5'"),
        ("study.name=Big Study", "study.name", "'Big Study'"),
    ],
)
def test_hydra_override_then_validate_fails(
    monkeypatch: pytest.MonkeyPatch, override: str, key: str, fragment: str
) -> None:
    monkeypatch.chdir(REPO)
    composed = yaml.safe_load(compose_yaml([override]))
    with pytest.raises(ConfigError) as caught:
        validate_params(composed)
    assert key in str(caught.value) and fragment in str(caught.value)


def test_hydra_override_batch_zero_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    composed = yaml.safe_load(compose_yaml(["sweep.batch_sizes=[0]"]))
    assert composed["sweep"]["batch_sizes"] == [0], "Hydra applied the override"
    with pytest.raises(ConfigError) as caught:
        validate_params(composed)
    assert "sweep.batch_sizes.0" in str(caught.value) and "greater than 0" in str(caught.value)


def test_write_params_refuses_bad_override_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)
    target = tmp_path / "params.yaml"
    with pytest.raises(ConfigError):
        write_params(["bench.device=tpu"], params_file=target)
    assert not target.exists()
    text = write_params(["sweep.batch_sizes=[2]"], params_file=target)
    assert target.read_text() == text
    assert validate_params(yaml.safe_load(text)).sweep.batch_sizes == [2]


# ---------------------------------------------------------------- drift (`compose --check`)


def test_committed_params_have_no_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert (REPO / "params.yaml").is_file()
    assert drift() == ""
    assert drift(params_file=REPO / "params.yaml") == ""


def test_drift_is_reported_for_a_modified_params_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    text = compose_yaml([])
    params = tmp_path / "params.yaml"
    params.write_text(text)
    assert drift(params_file=params) == "", "an unmodified copy is in sync"

    data = yaml.safe_load(text)
    data["bench"]["warmup_iterations"] += 1
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    difference = drift(params_file=params)
    assert difference
    assert str(params) in difference
    assert f"-  warmup_iterations: {data['bench']['warmup_iterations']}" in difference
    assert f"+  warmup_iterations: {data['bench']['warmup_iterations'] - 1}" in difference


def test_drift_when_params_file_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    difference = drift(params_file=tmp_path / "absent.yaml")
    assert difference
    added = [line for line in difference.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(added) == len(compose_yaml([]).splitlines())
