"""The fused-decode rung: a plain-PyTorch decode module over the HF checkpoint's own weights, in the minimal loop.

Changes from `hf_compiled_loop`, each found by the H200 decode probe (docs/h200-probes.md §1, TinyLlama-1.1B
shape: 1.105 against 1.405 ms a step at batch 1, 1.70 against 4.22 ms at batch 32):

* q/k/v are one Linear and gate/up another (one GEMV where there were three, one where there were two).
  The HF model's own projections become views of the fused weights, so every weight is held once (the
  allocator's peak is the model's, as for the other rungs) and the HF model still runs for the scenarios.
* Decode attention groups the query heads of each KV head against the unexpanded cache
  `[batch, kv_heads, max_len, head_dim]` of each layer: two batched matmuls and a softmax, no repeat_kv copies
  (in the probe's batch-32 profile HF's masked SDPA path, which expands K/V by the group size in every
  layer, took 2.75 of the step's 4.17 ms of kernel time).
* The whole step (forward, argmax, feeding the token back, position + 1) runs on the device, compiled by
  inductor without its own CUDA graphs and, on CUDA, captured as one CUDA graph: a step is one replay.

The prefill runs the same module uncompiled with SDPA's causal attention over the prompt and computes the
last position's logits only. Everything that is not fused is the HF model's own: embeddings, RMSNorms,
o/down projections, activation, lm_head, `apply_rotary_pos_emb` of the model's module, and the RoPE table,
which is the HF rotary module evaluated at every cache position (rope_theta and rope_scaling as transformers
computes them). Attention over the whole static cache, not only its filled part: the probe found no gain
at batch 1 (K/V is 0.6 % of a step's bytes there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import import_module

import torch
import torch.nn.functional as F
from torch import nn

from inference_study.backend import Generation
from inference_study.backends.hf.generate import HfGenerate, synchronize
from inference_study.backends.hf.loop import StepClock
from inference_study.backends.hf.settings import HfFusedLoopSettings
from inference_study.strict import ConfigError

# RoPE types whose HF module rescales with the sequence length as it grows (`dynamic_rope_update`): one table
# for every position would not reproduce them.
LENGTH_DEPENDENT_ROPE = ("dynamic", "longrope")


def fuse_linears(parts: list[nn.Linear]) -> nn.Linear:
    """One Linear computing `parts` side by side; afterwards each part's weight and bias are views of it.

    The parts then still compute what they did (the HF model keeps working) and no weight is held twice.
    """
    if len({part.bias is None for part in parts}) > 1:
        raise ValueError("cannot fuse linears of which only some have a bias")
    reference = parts[0].weight
    fused = nn.Linear(reference.shape[1], sum(part.out_features for part in parts),
                      bias=parts[0].bias is not None, device="meta", dtype=reference.dtype)
    fused.weight = nn.Parameter(torch.cat([part.weight for part in parts]), requires_grad=False)
    if fused.bias is not None:
        fused.bias = nn.Parameter(torch.cat([part.bias for part in parts]), requires_grad=False)
    start = 0
    for part in parts:
        end = start + part.out_features
        part.weight = nn.Parameter(fused.weight[start:end], requires_grad=False)
        if fused.bias is not None:
            part.bias = nn.Parameter(fused.bias[start:end], requires_grad=False)
        start = end
    return fused


def grouped_decode_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                             position: torch.Tensor, scaling: float, as_reduction: bool = False) -> torch.Tensor:
    """One new query per row `[batch, 1, heads, head_dim]` at `position` against a layer's whole cache
    `[batch, kv_heads, max_len, head_dim]`, later positions masked.

    Query heads are ordered KV-head-major (head h reads KV head h // group, as HF's repeat_kv expands), so a
    view groups them under their KV head and one batched matmul per side reads each cached K/V once.
    Scores and softmax in float32, as HF's eager attention does. `as_reduction` writes both products as
    broadcast multiplies summed over an axis: the same arithmetic, in a form inductor generates (and may
    fuse) its own kernels for instead of calling cuBLAS.
    """
    batch, _, heads, head_dim = query.shape
    kv_heads, max_len = keys.shape[1], keys.shape[2]
    grouped = (query * scaling).view(batch, kv_heads, heads // kv_heads, head_dim)
    if as_reduction:  # [batch, kv_heads, group, 1, head_dim] x [batch, kv_heads, 1, max_len, head_dim]
        scores = (grouped[:, :, :, None].float() * keys[:, :, None].float()).sum(dim=-1)
    else:
        scores = torch.matmul(grouped, keys.transpose(-1, -2)).float()  # [batch, kv_heads, group, max_len]
    visible = torch.arange(max_len, device=query.device) <= position
    probs = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1).to(query.dtype)
    if as_reduction:  # [batch, kv_heads, group, max_len, 1] x [batch, kv_heads, 1, max_len, head_dim]
        return (probs[..., None] * values[:, :, None]).sum(dim=-2).view(batch, 1, heads, head_dim)
    return torch.matmul(probs, values).view(batch, 1, heads, head_dim)


@dataclass(frozen=True)
class DecodeState:
    """What one (batch, max_len) shape's step reads and writes, in tensors allocated once: a CUDA graph
    replays on their addresses, so the same state serves every call of that shape."""

    # One [batch, kv_heads, max_len, head_dim] tensor a layer, as HF's StaticCache holds them: a step writes
    # into graph inputs themselves, never into views of one stacked buffer, which functionalization would
    # write back into the whole buffer (every layer's cache) on every step.
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    cos: torch.Tensor  # [max_len, head_dim], the HF rotary module's values at every position
    sin: torch.Tensor
    token: torch.Tensor  # [batch]: the last token, the next step's input
    position: torch.Tensor  # [1]: the cache position that token goes to
    history: torch.Tensor  # [batch, max_len]: the token at each position (outputs from the prompt's length)


class FusedLayer(nn.Module):
    """One decoder layer over the HF layer's modules, with q/k/v and gate/up fused."""

    def __init__(self, layer: nn.Module, apply_rope: Callable, attention_as_reduction: bool = False):
        super().__init__()
        self.attention_as_reduction = attention_as_reduction
        attention, mlp = layer.self_attn, layer.mlp
        self.input_layernorm, self.post_attention_layernorm = layer.input_layernorm, layer.post_attention_layernorm
        self.head_dim, self.scaling, self.apply_rope = attention.head_dim, attention.scaling, apply_rope
        self.heads = attention.q_proj.out_features // self.head_dim
        self.kv_heads = attention.k_proj.out_features // self.head_dim
        self.qkv = fuse_linears([attention.q_proj, attention.k_proj, attention.v_proj])
        self.o_proj = attention.o_proj
        self.gate_up = fuse_linears([mlp.gate_proj, mlp.up_proj])
        self.down_proj, self.act_fn = mlp.down_proj, mlp.act_fn

    def forward(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor, position: torch.Tensor, prefill: bool) -> torch.Tensor:
        """`hidden` [batch, length, hidden]: a whole prompt from position 0 (prefill) or one token at `position`."""
        batch, length, _ = hidden.shape
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        query, key, value = self.qkv(self.input_layernorm(hidden)).split([q_size, kv_size, kv_size], dim=-1)
        query = query.view(batch, length, self.heads, self.head_dim)
        key = key.view(batch, length, self.kv_heads, self.head_dim)
        query, key = self.apply_rope(query, key, cos[None], sin[None], unsqueeze_dim=2)
        key, value = key.transpose(1, 2), value.view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        if prefill:
            keys[:, :, :length], values[:, :, :length] = key, value
            out = F.scaled_dot_product_attention(query.transpose(1, 2), key, value, is_causal=True,
                                                 scale=self.scaling, enable_gqa=True).transpose(1, 2)
        else:
            keys.index_copy_(2, position, key)
            values.index_copy_(2, position, value)
            out = grouped_decode_attention(query, keys, values, position, self.scaling, self.attention_as_reduction)
        hidden = hidden + self.o_proj(out.reshape(batch, length, q_size))
        gate, up = self.gate_up(self.post_attention_layernorm(hidden)).chunk(2, dim=-1)
        return hidden + self.down_proj(self.act_fn(gate) * up)


class FusedDecoder(nn.Module):
    """A Llama/Qwen2 causal LM over a loaded HF model's modules: last-position logits of a prompt or a step."""

    def __init__(self, model: nn.Module, attention_as_reduction: bool = False):
        super().__init__()
        config = model.config
        layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
        rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
        if layer_types != {"full_attention"} or rope_type in LENGTH_DEPENDENT_ROPE:
            raise ConfigError(
                f"backends.hf_fused_loop: the fused module implements full attention with a fixed RoPE table; "
                f"this model has layer types {sorted(layer_types)} and rope_type {rope_type!r}; allowed: "
                f"full_attention layers and a rope_type other than {list(LENGTH_DEPENDENT_ROPE)}"
            )
        inner = model.model
        apply_rope = import_module(type(model).__module__).apply_rotary_pos_emb
        self.embed_tokens, self.norm, self.lm_head = inner.embed_tokens, inner.norm, model.lm_head
        self.rotary_emb = inner.rotary_emb
        self.layers = nn.ModuleList(FusedLayer(layer, apply_rope, attention_as_reduction) for layer in inner.layers)

    def new_state(self, batch: int, max_len: int) -> DecodeState:
        weight = self.embed_tokens.weight
        first = self.layers[0]
        shape = (batch, first.kv_heads, max_len, first.head_dim)
        cos, sin = self.rotary_emb(weight[:1], torch.arange(max_len, device=weight.device)[None])
        ids = partial(torch.zeros, dtype=torch.long, device=weight.device)
        caches = [tuple(weight.new_zeros(shape) for _ in self.layers) for _ in range(2)]
        return DecodeState(
            keys=caches[0], values=caches[1], cos=cos[0], sin=sin[0],
            token=ids(batch), position=ids(1), history=ids(batch, max_len),
        )

    def forward(self, ids: torch.Tensor, state: DecodeState, prefill: bool) -> torch.Tensor:
        """Logits [batch, vocab] after `ids`: a prompt written from position 0, or one token at `state.position`."""
        if prefill:
            cos, sin = state.cos[: ids.shape[1]], state.sin[: ids.shape[1]]
        else:
            cos, sin = state.cos.index_select(0, state.position), state.sin.index_select(0, state.position)
        hidden = self.embed_tokens(ids)
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, cos, sin, state.keys[index], state.values[index], state.position, prefill)
        return self.lm_head(self.norm(hidden[:, -1]))


def greedy_step(decoder: FusedDecoder, state: DecodeState) -> None:
    """One greedy decode step kept on the device: its tokens go to `history` and become the next input, and
    the position advances, so the step needs nothing from the host and replays as one CUDA graph."""
    token = decoder(state.token[:, None], state, prefill=False).argmax(dim=-1)
    state.token.copy_(token)
    state.history.index_copy_(1, state.position + 1, token[:, None])
    state.position.add_(1)


class HfFusedLoop(HfGenerate):
    name = "hf_fused_loop"
    description = (
        "changes from hf_compiled_loop: a plain-PyTorch decode module over the HF weights instead of the HF "
        "forward: fused QKV and gate/up projections, GQA attention against the unexpanded static cache (no "
        "repeat_kv copies), and the whole step (forward, argmax, token feedback) compiled without inductor's "
        "graphs and captured as one CUDA graph"
    )
    settings: HfFusedLoopSettings
    uses_torch_compile = True

    @property
    def compiles(self) -> bool:
        """Only a compiled step compiles: `compile_step: false` runs it eagerly, with no cache to report."""
        return self.settings.compile_step

    def load(self) -> None:
        super().load()
        import torch._inductor.config as inductor  # heavy: torch loads only where something runs on a device

        inductor.coordinate_descent_tuning = self.settings.coordinate_descent_tuning
        with torch.no_grad():
            self.decoder = FusedDecoder(self.model, self.settings.decode_attention == "reduction")
        self._states: dict[tuple[int, int], tuple[DecodeState, Callable[[], None]]] = {}
        self._step = greedy_step
        if self.settings.compile_step:
            self._step = torch.compile(greedy_step, mode=self.settings.compile_mode, fullgraph=True, dynamic=False)

    def _state(self, batch: int, max_len: int) -> tuple[DecodeState, Callable[[], None]]:
        """One state per shape and what advances it one step: a CUDA graph replay, or the compiled call.

        Built by the first call of a shape (the harness's warmup), which pays for compilation and capture.
        """
        key = (batch, max_len)
        if key not in self._states:
            state = self.decoder.new_state(batch, max_len)
            advance = partial(self._step, self.decoder, state)
            if self.device.startswith("cuda") and self.settings.cuda_graph:
                advance = self._capture(state, advance).replay
            self._states[key] = (state, advance)
        return self._states[key]

    @staticmethod
    def _capture(state: DecodeState, step: Callable[[], None]) -> torch.cuda.CUDAGraph:
        """Compile, warm up on a side stream, then capture one step, as tools/decode_probe.py does.

        Each call starts from position 0 so the writes stay inside the cache; what they leave there is
        overwritten by the next prefill and by each step before any step reads it.
        """
        state.position.zero_()
        step()  # compiles, when compiled
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                state.position.zero_()
                step()
        torch.cuda.current_stream().wait_stream(side)
        state.position.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        torch.cuda.synchronize()
        return graph

    @torch.inference_mode()
    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        ids = torch.tensor(input_ids, dtype=torch.long, device=self.device)
        batch, input_len = ids.shape
        state, advance = self._state(batch, input_len + output_len)
        clock = StepClock(self.device)
        synchronize(self.device)
        start = clock.start()
        first = self.decoder(ids, state, prefill=True).argmax(dim=-1)
        state.token.copy_(first)
        state.position.fill_(input_len)
        state.history[:, input_len] = first
        clock.mark()
        for _ in range(1, output_len):
            advance()
            clock.mark()
        times = clock.times()
        tokens = state.history[:, input_len:].tolist()
        return Generation(output_ids=tokens, start=start, token_times=[times] * batch)

    def release(self) -> None:
        self._states = {}
        self.decoder = None
        super().release()
