"""The model stage: an HF-format model directory from the hub, a local path, or random weights.

Timing does not depend on weight values, so the default study builds the real architecture with
random weights and a locally built tokenizer, fully offline. Every model directory carries
`study_model.json`, which says where the weights came from and whether they are random.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

from inference_study.config import ModelSpec
from inference_study.progress import steps
from inference_study.strict import ConfigError

PROVENANCE_FILE = "study_model.json"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


class ModelSourceError(RuntimeError):
    """The configured model could not be obtained; the message says what to do instead."""


def build_tokenizer(vocab_size: int, max_len: int):
    """A WordLevel tokenizer of exactly `vocab_size` ids ("w0" …): every id decodes, lengths are exact."""
    from tokenizers import (  # heavy: only building a random model needs it
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
    )
    from transformers import PreTrainedTokenizerFast  # heavy: only building or loading a model needs it

    words = SPECIAL_TOKENS + [f"w{i}" for i in range(vocab_size - len(SPECIAL_TOKENS))]
    tokenizer = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_len,
    )


def build_random_model(spec: ModelSpec, out_dir: Path) -> None:
    """Instantiate the architecture with seeded random weights in the configured dtype and save it."""
    import torch  # heavy: torch loads only where something runs on a device
    from transformers import (  # heavy: only building or loading a model needs it
        AutoConfig,
        AutoModelForCausalLM,
        GenerationConfig,
    )

    shape = spec.shape.model_dump(exclude_none=True)
    with steps(f"random {spec.architecture} model", ["tokenizer", "weights", "save"]) as begin:
        begin("tokenizer")
        tokenizer = build_tokenizer(shape["vocab_size"], spec.max_seq_len)
        begin("weights")
        ids = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
        hf_config = AutoConfig.for_model(spec.architecture, max_position_embeddings=spec.max_seq_len, **ids, **shape)
        torch.manual_seed(spec.seed)
        device = "cuda" if torch.cuda.is_available() else "cpu"  # init on the GPU when there is one: much faster
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(hf_config, dtype=getattr(torch, spec.dtype))
        model.generation_config = GenerationConfig(**ids)
        begin("save")
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)


HUB_TIMEOUT_S = 10.0


def hub_reachable(spec: ModelSpec) -> str | None:
    """Why the pinned revision cannot be fetched from the hub now (one line), or None: asked once, with a
    short timeout, before any stage deletes anything."""
    import httpx  # heavy: loads with huggingface_hub, only for a hub model
    from huggingface_hub import model_info  # heavy: only a hub model needs it
    from huggingface_hub.errors import HfHubHTTPError  # heavy: only a hub model needs it

    try:
        model_info(spec.hf_repo_id, revision=spec.revision, timeout=HUB_TIMEOUT_S)
    except (HfHubHTTPError, OSError, httpx.HTTPError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        return (f"cannot reach {spec.hf_repo_id}@{spec.revision} on the Hugging Face Hub ({type(error).__name__}: "
                f"{first_line}); without network access use `source: random` (timings do not depend on weights)")
    return None


def download_hf_model(spec: ModelSpec, out_dir: Path) -> None:
    """Download a pinned revision with huggingface_hub; offline, explain how to run without the hub."""
    import httpx  # heavy: loads with huggingface_hub, only for a hub download
    from huggingface_hub import snapshot_download  # heavy: only a hub download needs it
    from huggingface_hub.errors import (  # heavy: only a hub download needs it
        HfHubHTTPError,
        LocalEntryNotFoundError,
    )

    try:
        snapshot_download(
            repo_id=spec.hf_repo_id,
            revision=spec.revision,
            local_dir=out_dir,
            allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"],
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, httpx.HTTPError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise ModelSourceError(
            f"could not download {spec.hf_repo_id}@{spec.revision} from the Hugging Face Hub "
            f"({type(error).__name__}: {first_line}). Without network access, use the same architecture with "
            "random weights: set the model's `source: random` (timings do not depend on weight values)."
        ) from None


def prepare_model(name: str, spec: ModelSpec, out_dir: Path) -> dict[str, Any]:
    """Create `out_dir` afresh for model `name` and record its provenance; returns that record.

    The directory is emptied first: a download tool that finds files there may keep them, and old
    random weights must never be recorded as a hub model.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    weights_dir: str = "."
    if spec.source == "random":
        build_random_model(spec, out_dir)
    elif spec.source == "hf":
        download_hf_model(spec, out_dir)
    else:
        local = Path(spec.local_path).expanduser().resolve()
        if not (local / "config.json").is_file():
            raise ConfigError(
                f"models.{name}.local_path: {spec.local_path!r} is not an HF model directory (no config.json)"
            )
        weights_dir = str(local)
    provenance = {
        "name": name,
        "source": spec.source,
        "random_weights": spec.source == "random",
        "weights_dir": weights_dir,
        "spec": spec.model_dump(),
    }
    (out_dir / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return provenance


def resolve_model(stage_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The directory holding the weights of a prepared model, and its provenance record."""
    record_path = stage_dir / PROVENANCE_FILE
    if not record_path.is_file():
        raise ModelSourceError(f"{stage_dir} holds no prepared model: run the model stage (`dvc repro model`)")
    provenance = json.loads(record_path.read_text())
    return (stage_dir / provenance["weights_dir"]).resolve(), provenance


def safetensors_size(model_dir: Path) -> tuple[int, int]:
    """(parameter count, weight bytes) read from safetensors headers, without loading any tensor."""
    parameters = weight_bytes = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with open(path, "rb") as handle:
            header_len = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(header_len))
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            count = 1
            for dim in entry["shape"]:
                count *= dim
            parameters += count
            weight_bytes += end - begin
    return parameters, weight_bytes


def model_geometry(model_dir: Path, dtype_bytes: int) -> dict[str, Any]:
    """Layer, head and vocabulary sizes from config.json (the text config of multimodal models)."""
    config = json.loads((model_dir / "config.json").read_text())
    config = config.get("text_config", config)
    heads = config["num_attention_heads"]
    return {
        "layers": config["num_hidden_layers"],
        "hidden_size": config["hidden_size"],
        "attention_heads": heads,
        "kv_heads": config.get("num_key_value_heads") or heads,
        "head_dim": config.get("head_dim") or config["hidden_size"] // heads,
        "vocab_size": config["vocab_size"],
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", False)),
        "dtype_bytes": dtype_bytes,
    }
