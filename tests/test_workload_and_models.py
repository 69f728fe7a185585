"""Synthetic workload and the model stage (random weights, local paths, the hub offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers.repository import REPO_ROOT
from inference_study import models
from inference_study.compose import compose_yaml
from inference_study.config import ConfigError, ModelSpec
from inference_study.workload import FIRST_ORDINARY_TOKEN, synthetic_input_ids, token_hash

REPO = REPO_ROOT


# ---------------------------------------------------------------- workload


def test_synthetic_ids_shape() -> None:
    ids = synthetic_input_ids(3, 17, 1024, 0)
    assert len(ids) == 3
    assert all(len(row) == 17 for row in ids)
    assert all(isinstance(token, int) for row in ids for token in row)


def test_synthetic_ids_deterministic_for_same_seed_and_shape() -> None:
    assert synthetic_input_ids(4, 64, 1024, 7) == synthetic_input_ids(4, 64, 1024, 7)


def test_synthetic_ids_differ_for_another_seed() -> None:
    assert synthetic_input_ids(4, 64, 1024, 0) != synthetic_input_ids(4, 64, 1024, 1)


def test_synthetic_rows_are_not_all_the_same() -> None:
    ids = synthetic_input_ids(4, 64, 1024, 0)
    assert len({tuple(row) for row in ids}) == 4


def test_synthetic_ids_avoid_special_tokens_and_stay_in_vocab() -> None:
    """With a 16-token vocab and 4096 draws every ordinary id shows up, and no special id (0-3) ever does."""
    vocab = 16
    ids = synthetic_input_ids(8, 512, vocab, 3)
    seen = {token for row in ids for token in row}
    assert FIRST_ORDINARY_TOKEN == 4
    assert seen == set(range(FIRST_ORDINARY_TOKEN, vocab))


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_synthetic_ids_bounds_at_real_vocab(seed: int) -> None:
    ids = synthetic_input_ids(2, 256, 1024, seed)
    flat = [token for row in ids for token in row]
    assert min(flat) >= 4
    assert max(flat) < 1024


def test_token_hash_stable() -> None:
    ids = synthetic_input_ids(2, 32, 1024, 0)
    copy = [list(row) for row in ids]
    first = token_hash(ids)
    assert token_hash(copy) == first
    assert token_hash(ids) == first
    assert len(first) == 16 and int(first, 16) >= 0


def test_token_hash_changes_when_one_token_changes() -> None:
    ids = synthetic_input_ids(2, 32, 1024, 0)
    changed = [list(row) for row in ids]
    changed[1][17] = changed[1][17] + 1 if changed[1][17] < 1023 else 4
    assert token_hash(changed) != token_hash(ids)


def test_token_hash_depends_on_shape() -> None:
    """Same token sequence, different batch layout: a different workload, a different hash."""
    assert token_hash([[5, 6], [7, 8]]) != token_hash([[5, 6, 7, 8]])


# ---------------------------------------------------------------- tokenizer


def test_build_tokenizer_has_exactly_vocab_size_ids() -> None:
    tokenizer = models.build_tokenizer(vocab_size=64, max_len=128)
    assert len(tokenizer) == 64
    assert sorted(tokenizer.get_vocab().values()) == list(range(64))
    assert tokenizer.model_max_length == 128
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        0, 1, 2, 3,
    )


def test_every_tokenizer_id_decodes_and_round_trips() -> None:
    tokenizer = models.build_tokenizer(vocab_size=64, max_len=128)
    for token_id in range(64):
        text = tokenizer.decode([token_id])
        assert text, f"id {token_id} decodes to nothing"
        assert tokenizer(text, add_special_tokens=False).input_ids == [token_id], (token_id, text)


def test_tokenizer_lengths_are_exact() -> None:
    """One id per whitespace-separated word, so an input of N words is exactly N tokens."""
    tokenizer = models.build_tokenizer(vocab_size=64, max_len=128)
    ids = synthetic_input_ids(1, 40, 64, 0)[0]
    text = tokenizer.decode(ids)
    assert tokenizer(text, add_special_tokens=False).input_ids == ids


# ---------------------------------------------------------------- prepare_model


@pytest.fixture(scope="module")
def tiny_spec() -> ModelSpec:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        raw = yaml.safe_load(compose_yaml([]))
    return ModelSpec.model_validate(raw["models"]["tiny_llama"])


@pytest.fixture(scope="module")
def tiny_model(tiny_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("models") / "tiny_llama"
    provenance = models.prepare_model("tiny_llama", tiny_spec, out_dir)
    return out_dir, provenance


def test_prepare_random_model_writes_hf_directory(tiny_model: tuple[Path, dict], tiny_spec: ModelSpec) -> None:
    out_dir, provenance = tiny_model
    names = {p.name for p in out_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            models.PROVENANCE_FILE} <= names
    record = json.loads((out_dir / models.PROVENANCE_FILE).read_text())
    assert record == provenance
    assert record["random_weights"] is True
    assert record["source"] == "random"
    assert record["name"] == "tiny_llama"
    assert record["spec"] == tiny_spec.model_dump()
    config = json.loads((out_dir / "config.json").read_text())
    for key, value in tiny_spec.shape.model_dump(exclude_none=True).items():
        assert config[key] == value, key
    assert config["max_position_embeddings"] == tiny_spec.max_seq_len


def test_prepared_model_reloads_offline(tiny_model: tuple[Path, dict], tiny_spec: ModelSpec,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out_dir, _ = tiny_model
    model = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True)
    assert model.config.model_type == tiny_spec.architecture
    assert model.config.hidden_size == tiny_spec.shape.hidden_size
    assert model.config.num_hidden_layers == tiny_spec.shape.num_hidden_layers
    assert next(model.parameters()).dtype == getattr(torch, tiny_spec.dtype)
    tokenizer = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    assert len(tokenizer) == tiny_spec.shape.vocab_size


def test_safetensors_size_matches_reloaded_model(tiny_model: tuple[Path, dict]) -> None:
    from transformers import AutoModelForCausalLM

    out_dir, _ = tiny_model
    model = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True)
    parameters, weight_bytes = models.safetensors_size(out_dir)
    assert parameters == sum(p.numel() for p in model.parameters())
    assert weight_bytes == sum(p.numel() * p.element_size() for p in model.parameters())
    assert parameters > 0


def test_random_weights_are_seeded(tiny_spec: ModelSpec, tmp_path: Path, tiny_model: tuple[Path, dict]) -> None:
    """The same spec builds byte-identical weights (the seed is honoured)."""
    out_dir, _ = tiny_model
    again = tmp_path / "again"
    models.prepare_model("tiny_llama", tiny_spec, again)
    assert (again / "model.safetensors").read_bytes() == (out_dir / "model.safetensors").read_bytes()


def test_resolve_model_of_random_model(tiny_model: tuple[Path, dict]) -> None:
    out_dir, provenance = tiny_model
    weights_dir, record = models.resolve_model(out_dir)
    assert weights_dir == out_dir.resolve()
    assert record == provenance


def test_resolve_model_without_provenance(tmp_path: Path) -> None:
    with pytest.raises(models.ModelSourceError) as caught:
        models.resolve_model(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_local_source_points_at_existing_directory(tiny_model: tuple[Path, dict], tmp_path: Path) -> None:
    out_dir, _ = tiny_model
    spec = ModelSpec(source="local", architecture="llama", dtype="float32", max_seq_len=1024,
                     local_path=str(out_dir))
    stage_dir = tmp_path / "stage"
    record = models.prepare_model("mine", spec, stage_dir)
    assert record["random_weights"] is False
    assert record["source"] == "local"
    assert not (stage_dir / "model.safetensors").exists(), "local weights are pointed at, not copied"
    weights_dir, _ = models.resolve_model(stage_dir)
    assert weights_dir == out_dir.resolve()


def test_local_source_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "model"
    spec = ModelSpec(source="local", architecture="llama", dtype="float16", max_seq_len=2048,
                     local_path=str(missing))
    with pytest.raises(ConfigError) as caught:
        models.prepare_model("my_model", spec, tmp_path / "stage")
    message = str(caught.value)
    assert "models.my_model.local_path" in message
    assert str(missing) in message
    assert not (tmp_path / "stage" / models.PROVENANCE_FILE).exists()


def test_local_source_directory_without_config(tmp_path: Path) -> None:
    empty = tmp_path / "empty_model"
    empty.mkdir()
    spec = ModelSpec(source="local", architecture="llama", dtype="float16", max_seq_len=2048,
                     local_path=str(empty))
    with pytest.raises(ConfigError, match=r"models\.other\.local_path.*no config\.json"):
        models.prepare_model("other", spec, tmp_path / "stage")


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    """No hub and an empty hub cache; returns a hub model spec to try to download."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable when it is first imported; earlier tests may have imported it
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    return ModelSpec(source="hf", architecture="llama", dtype="float16", max_seq_len=4096,
                     hf_repo_id="TinyLlama/TinyLlama-1.1B-Chat-v1.0", revision="main")


def test_hf_source_offline_suggests_random(tmp_path: Path, offline_hub: ModelSpec) -> None:
    with pytest.raises(models.ModelSourceError) as caught:
        models.prepare_model("tinyllama_1b", offline_hub, tmp_path / "stage")
    message = str(caught.value)
    assert "TinyLlama/TinyLlama-1.1B-Chat-v1.0@main" in message
    assert "source: random" in message
    assert not (tmp_path / "stage" / models.PROVENANCE_FILE).exists()


def test_hf_source_offline_over_a_stale_random_model(
    tiny_spec: ModelSpec, tmp_path: Path, offline_hub: ModelSpec
) -> None:
    stage = tmp_path / "stage"
    models.prepare_model("tinyllama_1b", tiny_spec, stage)  # an earlier random build in the same directory
    with pytest.raises(models.ModelSourceError):
        models.prepare_model("tinyllama_1b", offline_hub, stage)
    # the old random weights are gone, never recorded as hub weights
    assert not (stage / models.PROVENANCE_FILE).exists()
    assert not list(stage.glob("*.safetensors"))
