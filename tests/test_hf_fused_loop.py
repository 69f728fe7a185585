"""The hf_fused_loop rung on CPU (fp32): the fused decode module is the HF model's computation, its greedy tokens
are hf_eager's, and its step really compiles; and hf_paged's two optional knobs reach transformers' config
without changing the settings, and so the config hash, of any result recorded before them.

Each compiled generate of a new shape compiles once (10-25 s on 2 cores): the tiny Llama at batch 1 and 4,
nothing more; the tiny Qwen2 (biases) runs the same module uncompiled.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers.repository import REPO_ROOT
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache, GenerationConfig

from inference_study.backends.hf.fused import FusedDecoder, HfFusedLoop
from inference_study.backends.hf.generate import HfEager
from inference_study.backends.hf.paged import HfPaged
from inference_study.backends.hf.settings import HfEagerSettings, HfFusedLoopSettings, HfPagedSettings
from inference_study.config import BenchSettings, ModelShape, ModelSpec
from inference_study.models import prepare_model
from inference_study.plan import BenchUnit
from inference_study.results import read_result
from inference_study.strict import ConfigError
from inference_study.workload import synthetic_input_ids

VOCAB, INPUT_LEN, OUTPUT_LEN = 1024, 12, 8
PAGED_KEYS = {"attn_implementation", "block_size", "num_blocks", "max_batch_tokens", "allow_block_sharing"}
TINY_QWEN2 = ModelShape(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1e6)


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 (q/k/v biases) with linear RoPE scaling, rewritten so that neither is a no-op.

    The random init leaves biases at zero and the study's shapes carry no rope_scaling, so both are set here.
    """
    out_dir = tmp_path_factory.mktemp("models") / "tiny_qwen2"
    prepare_model("tiny_qwen2", ModelSpec(source="random", architecture="qwen2", dtype="float32", max_seq_len=128,
                                          shape=TINY_QWEN2), out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.model.layers:
            for projection in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                projection.bias.copy_(torch.randn(projection.bias.shape, generator=generator) * 0.5)
    model.config.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": TINY_QWEN2.rope_theta}
    model.save_pretrained(out_dir)
    return out_dir


def _loaded(cls, settings, model_dir: Path):
    backend = cls(settings, model_dir, "float32", "cpu")
    backend.load()
    return backend


@pytest.fixture(scope="module")
def fused(model_dir: Path):
    backend = _loaded(HfFusedLoop, HfFusedLoopSettings(), model_dir)
    yield backend
    backend.release()


@pytest.fixture(scope="module")
def compiled_runs(fused: HfFusedLoop) -> dict[int, tuple]:
    """Each batch generated twice by the rung (the first call compiles), with the graphs dynamo compiled."""
    from torch._dynamo.utils import counters

    out = {}
    for batch in (1, 4):
        ids = synthetic_input_ids(batch, INPUT_LEN, VOCAB, seed=batch)
        counters.clear()
        generations = [fused.generate(ids, OUTPUT_LEN) for _ in range(2)]
        out[batch] = (ids, generations, counters["stats"]["unique_graphs"], dict(counters["graph_break"]))
    return out


@pytest.mark.parametrize("batch", [1, 4])
def test_greedy_tokens_identical_to_hf_eager(compiled_runs: dict, backend: HfEager, batch: int) -> None:
    ids, generations, _, _ = compiled_runs[batch]
    expected = backend.generate(ids, OUTPUT_LEN).output_ids
    assert [generation.output_ids for generation in generations] == [expected, expected]
    assert len({tuple(row) for row in expected}) == batch, "different prompts give different outputs"


@pytest.mark.parametrize("batch", [1, 4])
def test_exactly_output_len_tokens_at_increasing_times(compiled_runs: dict, batch: int) -> None:
    _, generations, _, _ = compiled_runs[batch]
    for generation in generations:
        assert [len(row) for row in generation.output_ids] == [OUTPUT_LEN] * batch
        assert len(generation.token_times) == batch
        for times in generation.token_times:
            assert len(times) == OUTPUT_LEN and generation.start < times[0]
            assert all(later > earlier for earlier, later in itertools.pairwise(times)), times
    assert generations[1].start > generations[0].token_times[0][-1], "calls do not overlap"


@pytest.mark.parametrize("batch", [1, 4])
def test_step_really_compiles_on_cpu_in_one_graph(compiled_runs: dict, batch: int) -> None:
    _, _, graphs, breaks = compiled_runs[batch]
    assert graphs == 1, "one graph per new shape, none for the repeated call"
    assert breaks == {}


def test_fused_weights_are_the_hf_models_own(fused: HfFusedLoop) -> None:
    """The HF projections are views of the fused weights: nothing is held twice, and the HF model still runs."""
    for hf_layer, layer in zip(fused.model.model.layers, fused.decoder.layers):
        for fused_linear, parts in ((layer.qkv, ("q_proj", "k_proj", "v_proj")),
                                    (layer.gate_up, ("gate_proj", "up_proj"))):
            owner = hf_layer.self_attn if parts[0] == "q_proj" else hf_layer.mlp
            storage = fused_linear.weight.untyped_storage().data_ptr()
            for name in parts:
                assert getattr(owner, name).weight.untyped_storage().data_ptr() == storage, name


def _reference_logits(model_dir: Path, prompt: torch.Tensor, fed: torch.Tensor) -> list[torch.Tensor]:
    """Last-position logits of a separately loaded HF model (eager attention, DynamicCache): after the prompt,
    then after each token of `fed` in turn."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", local_files_only=True)
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        logits = [model(input_ids=prompt, past_key_values=cache, use_cache=True).logits[:, -1]]
        for step in range(fed.shape[1]):
            logits.append(model(input_ids=fed[:, step: step + 1], past_key_values=cache, use_cache=True).logits[:, -1])
    return logits


@pytest.mark.parametrize("attention_as_reduction", [False, True], ids=["matmul", "reduction"])
@pytest.mark.parametrize("which", ["llama", "qwen2"])
def test_module_logits_match_the_hf_model(which: str, attention_as_reduction: bool, model_dir: Path,
                                          qwen2_dir: Path) -> None:
    """Prefill and each decode step of the (uncompiled) module give the HF model's logits at fp32 tolerance,
    with decode attention in either form (`decode_attention`)."""
    directory = {"llama": model_dir, "qwen2": qwen2_dir}[which]
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    if which == "qwen2":
        assert model.config.rope_parameters["rope_type"] == "linear"
        assert model.model.layers[0].self_attn.k_proj.bias.abs().min() > 0
    decoder = FusedDecoder(model, attention_as_reduction)
    prompt = torch.tensor(synthetic_input_ids(2, INPUT_LEN, VOCAB, seed=3))
    fed = torch.tensor(synthetic_input_ids(2, 5, VOCAB, seed=4))
    state = decoder.new_state(2, INPUT_LEN + fed.shape[1])
    with torch.inference_mode():
        logits = [decoder(prompt, state, prefill=True)]
        for step in range(fed.shape[1]):
            state.position.fill_(INPUT_LEN + step)
            logits.append(decoder(fed[:, step: step + 1], state, prefill=False))
    for position, (got, want) in enumerate(zip(logits, _reference_logits(directory, prompt, fed), strict=True)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=f"logits after {position} decode steps")


def test_qwen2_with_biases_greedy_tokens_identical_to_hf_eager(qwen2_dir: Path) -> None:
    """Through the rung's own generate, with the step left uncompiled (`compile_step: false`) to spare a third
    compile: the compiled step is the Llama tests' above, and the biases are in the module either way."""
    from torch._dynamo.utils import counters

    ids = synthetic_input_ids(2, INPUT_LEN, VOCAB, seed=5)
    eager = _loaded(HfEager, HfEagerSettings(), qwen2_dir)
    fused = _loaded(HfFusedLoop, HfFusedLoopSettings(compile_step=False), qwen2_dir)
    try:
        assert fused.decoder.layers[0].qkv.bias is not None
        counters.clear()
        generation = fused.generate(ids, OUTPUT_LEN)
        assert counters["stats"]["unique_graphs"] == 0
        assert generation.output_ids == eager.generate(ids, OUTPUT_LEN).output_ids
    finally:
        fused.release()
        eager.release()


def test_sliding_window_models_are_refused_naming_the_backend() -> None:
    config = AutoConfig.for_model("qwen2", **TINY_QWEN2.model_dump(exclude_none=True), use_sliding_window=True,
                                  sliding_window=8, max_window_layers=0)
    with pytest.raises(ConfigError, match="backends.hf_fused_loop: .*sliding_attention"):
        FusedDecoder(AutoModelForCausalLM.from_config(config))


def test_fused_settings_offer_no_mode_with_its_own_cuda_graphs() -> None:
    with pytest.raises(ValueError, match="compile_mode"):
        HfFusedLoopSettings(compile_mode="reduce-overhead")
    assert "attn_implementation" not in HfFusedLoopSettings().model_dump()


def test_decode_attention_dumps_only_when_set() -> None:
    """Left out at its default, so committed cells keep their config hash; set, it is recorded."""
    assert "decode_attention" not in HfFusedLoopSettings().model_dump()
    assert "decode_attention" not in json.loads(HfFusedLoopSettings().model_dump_json())
    assert HfFusedLoopSettings(decode_attention="reduction").model_dump()["decode_attention"] == "reduction"
    with pytest.raises(ValueError, match="decode_attention"):
        HfFusedLoopSettings(decode_attention="sdpa")


def test_reduction_attention_compiles_in_one_graph_with_hf_eager_tokens(model_dir: Path, backend: HfEager) -> None:
    """The compiled step with `decode_attention: reduction` (one more compile, batch 1)."""
    from torch._dynamo.utils import counters

    ids = synthetic_input_ids(1, INPUT_LEN, VOCAB, seed=1)
    fused = _loaded(HfFusedLoop, HfFusedLoopSettings(decode_attention="reduction"), model_dir)
    try:
        assert fused.decoder.layers[0].attention_as_reduction
        counters.clear()
        generations = [fused.generate(ids, OUTPUT_LEN) for _ in range(2)]
        assert counters["stats"]["unique_graphs"] == 1 and dict(counters["graph_break"]) == {}
        expected = backend.generate(ids, OUTPUT_LEN).output_ids
        assert [generation.output_ids for generation in generations] == [expected, expected]
    finally:
        fused.release()


# ---------------------------------------------------------------- hf_paged: graphs and compile as settings


def _paged(settings: HfPagedSettings, model_dir: Path) -> HfPaged:
    return HfPaged(settings, model_dir, "float32", "cpu")


def test_paged_knobs_reach_continuous_batching_config(model_dir: Path) -> None:
    """Set, they are passed as transformers names them; unset, transformers' own defaults stay."""
    config = _paged(HfPagedSettings(use_cuda_graph=True, compile_level=2), model_dir).continuous_batching_config()
    assert (config.use_cuda_graph, config.default_compile_level) == (True, 2)
    assert (config.block_size, config.num_blocks, config.max_batch_tokens, config.allow_block_sharing) == (
        32, 64, 512, False)
    default = _paged(HfPagedSettings(), model_dir).continuous_batching_config()
    assert (default.use_cuda_graph, default.default_compile_level) == (None, 0)
    off = _paged(HfPagedSettings(use_cuda_graph=False, compile_level=0), model_dir).continuous_batching_config()
    assert (off.use_cuda_graph, off.default_compile_level) == (False, 0)


def test_paged_manager_is_started_with_that_config(model_dir: Path) -> None:
    """What `_start_manager` hands to init_continuous_batching (a stand-in model records it; nothing loads)."""
    seen = {}

    def init_continuous_batching(generation_config, continuous_batching_config):
        seen["config"] = continuous_batching_config
        return SimpleNamespace(warmup=lambda: None, start=lambda: None)

    paged = _paged(HfPagedSettings(use_cuda_graph=False, compile_level=1), model_dir)
    paged.model = SimpleNamespace(init_continuous_batching=init_continuous_batching)
    paged._start_manager(GenerationConfig())
    assert (seen["config"].use_cuda_graph, seen["config"].default_compile_level) == (False, 1)


def test_paged_defaults_dump_as_before_and_set_knobs_dump() -> None:
    assert set(HfPagedSettings().model_dump()) == PAGED_KEYS
    assert json.loads(HfPagedSettings().model_dump_json()).keys() == PAGED_KEYS
    set_knobs = HfPagedSettings(use_cuda_graph=False, compile_level=0).model_dump()
    assert set(set_knobs) == PAGED_KEYS | {"use_cuda_graph", "compile_level"}
    assert (set_knobs["use_cuda_graph"], set_knobs["compile_level"]) == (False, 0), "a set falsy value is kept"
    with pytest.raises(ValueError, match="compile_level"):
        HfPagedSettings(compile_level=4)


def test_committed_paged_results_keep_their_config_hash() -> None:
    """Every hf_paged result committed under reports/measured/ hashes as recorded under today's settings class."""
    import yaml

    # Reports whose params still hold the fixed count their cells ran under (a report rebuilt under the stopping
    # rule keeps its old cells as measured under other settings).
    paths = [path for path in sorted(REPO_ROOT.glob("reports/measured/*/inputs/cells/*/hf_paged/*.json"))
             if yaml.safe_load((path.parents[3] / "params.yaml").read_text())["bench"].get("iterations") is not None]
    assert paths, "the committed H100 run holds hf_paged cells"
    for path in paths:
        result = read_result(path)
        params = yaml.safe_load((path.parents[3] / "params.yaml").read_text())
        unit = BenchUnit(cell=result.cell, model=ModelSpec.model_validate(params["models"][result.cell.model]),
                         settings=HfPagedSettings.model_validate(result.backend.settings),
                         bench=BenchSettings.model_validate(params["bench"]))
        assert unit.config_hash == result.config_hash, path
