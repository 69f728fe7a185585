"""Decode-step probe: how close can a plain-PyTorch greedy decode of the TinyLlama-1.1B shape get to the
H200's bandwidth limit? Measures TPOT, MBU, kernels per step and token agreement for several variants.

Self-contained: torch + transformers + stdlib only (not the inference_study package). Random fp16 weights
built from a config, greedy, EOS ignored, exact output length. Every variant decodes the same prompts after
the same HF prefill (a StaticCache of input + output positions), so only the decode step differs.

    PYTHONUNBUFFERED=1 python tools/decode_probe.py --out $OUT/decode.json            # GPU
    python tools/decode_probe.py --device cpu --tiny --batches 1,2 --input 16 --output 8 --out /tmp/d.json

Variants (name: what it is)
  ref_eager      HF LlamaForCausalLM eager forward, DynamicCache, greedy loop: the token reference
  hf_loop        the project's hf_compiled_loop reproduced: HF forward + StaticCache, decode step + argmax
                 under torch.compile(mode="reduce-overhead", fullgraph=True), coordinate_descent_tuning on
  own_eager_g    own Llama decode module (fused QKV and gate/up, GQA attention as two batched matmuls over
                 the whole static cache with a mask), no compile, whole step captured as one CUDA graph
  own_unfused_c  own module with separate q/k/v and gate/up Linears, torch.compile(default)+CDT, one
                 manually captured CUDA graph per step (token feedback, position += 1 inside the graph)
  own_fused_c    as own_unfused_c with fused QKV and gate/up weights
  own_fused_bkt  as own_fused_c, attention over only the filled part of the cache, rounded up to a bucket
                 of --bucket positions (one graph per bucket; the host picks the graph by position)
  own_fused_bkt_ma   as own_fused_bkt, torch.compile(mode="max-autotune-no-cudagraphs")+CDT, manual graphs
  own_fused_bkt_gemv as own_fused_bkt with every Linear written as a broadcast multiply + sum, so inductor
                 emits the GEMVs as its own (CDT-tuned) reduction kernels, fusable with neighbours (batch 1)

TPOT = median over the decode steps (output - 1 per run, --runs runs) of the interval between CUDA events
recorded after consecutive steps. MBU = (weight bytes + KV bytes/token x batch x (input + output/2)) / TPOT /
bandwidth, against the device-to-device copy bandwidth measured at the start (and the project's 4232 GB/s).
Kernels/step: torch.profiler over one whole decode (graph replays included), kernel events / steps.

Cost on the H200 (docs/h200-probes.md): each compiled variant spends 57-115 s compiling and capturing, so
the default plan does not fit one 600 s device call; --budget-s skips what would start too late (the JSON is
written after every variant), and --plan picks what to run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import time
import traceback

import torch
import torch._dynamo
import torch._inductor.config as inductor
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig, StaticCache

T0 = time.perf_counter()
PROJECT_BW_GB_S = 4232.0

SHAPES = {
    "tinyllama_1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4),
    "tiny": dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
}

# name -> own-module options (None: not an own-module variant)
VARIANTS = {
    "ref_eager": None,
    "hf_loop": None,
    "own_eager_g": dict(fused=True, bucket=0, compile=None),
    "own_unfused_c": dict(fused=False, bucket=0, compile="default"),
    "own_fused_c": dict(fused=True, bucket=0, compile="default"),
    "own_fused_bkt": dict(fused=True, bucket=64, compile="default"),
    "own_fused_bkt_ma": dict(fused=True, bucket=64, compile="max-autotune-no-cudagraphs"),
    "own_fused_bkt_gemv": dict(fused=True, bucket=64, compile="default", gemv=True),
}
DEFAULT_PLAN = ("1:ref_eager,1:hf_loop,1:own_eager_g,1:own_fused_c,1:own_fused_bkt,"
                "32:ref_eager,32:hf_loop,32:own_eager_g,32:own_fused_c,32:own_fused_bkt,"
                "1:own_unfused_c,1:own_fused_bkt_gemv,1:own_fused_bkt_ma,32:own_unfused_c,32:own_fused_bkt_ma")


def log(msg: str) -> None:
    print(f"[decode {time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Marks:
    """Per-step completion marks: CUDA events on a GPU (no host sync in the loop), host clock on a CPU."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.marks = []

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())

    def deltas_ms(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [(b - a) * 1e3 for a, b in zip(self.marks, self.marks[1:])]


def build_model(shape: str, device: str, dtype: torch.dtype):
    cfg = LlamaConfig(**SHAPES[shape], rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096,
                      tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def measure_bandwidth_gb_s(device: str, size: int = 4 << 30, repeats: int = 20) -> float | None:
    if not device.startswith("cuda"):
        return None
    src = torch.empty(size, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        samples.append(a.elapsed_time(b) / 1e3)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * size / statistics.median(samples) / 1e9


def first_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[int | None, int]:
    """(first position where any row differs or None, rows fully equal)."""
    neq = a.cpu() != b.cpu()
    rows_equal = int((~neq.any(dim=1)).sum())
    if not neq.any():
        return None, rows_equal
    return int(neq.any(dim=0).nonzero()[0]), rows_equal


# --------------------------------------------------------------------------------------------------------- #
# HF paths                                                                                                   #
# --------------------------------------------------------------------------------------------------------- #

@torch.inference_mode()
def ref_generate(model, ids: torch.Tensor, output: int, device: str, ctx=None):
    cache = DynamicCache(config=model.config)
    marks = Marks(device)
    logits = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    tok = logits[:, -1].argmax(-1)
    toks = [tok]
    marks.mark()
    with ctx if ctx is not None else contextlib.nullcontext():
        for _ in range(output - 1):
            logits = model(input_ids=tok[:, None], past_key_values=cache, use_cache=True).logits
            tok = logits[:, -1].argmax(-1)
            toks.append(tok)
            marks.mark()
        sync(device)
    return torch.stack(toks, 1), marks.deltas_ms()


def hf_prefill(model, cache: StaticCache, ids: torch.Tensor) -> torch.Tensor:
    cache.reset()
    n = ids.shape[1]
    pos = torch.arange(n, device=ids.device)
    logits = model(input_ids=ids, past_key_values=cache, cache_position=pos, logits_to_keep=1).logits
    return logits[:, -1].argmax(-1)


def _greedy_step(model, cache, token, position):
    logits = model(input_ids=token[:, None], past_key_values=cache, cache_position=position, use_cache=True).logits
    return logits[:, -1].argmax(dim=-1)


class HfLoop:
    """The project's hf_compiled_loop, reproduced from src/inference_study/backends/hf_loop.py."""

    def __init__(self, model, cache: StaticCache, device: str):
        self.model, self.cache, self.device = model, cache, device
        mode = "reduce-overhead" if device.startswith("cuda") else "default"
        self.step = torch.compile(_greedy_step, mode=mode, fullgraph=True, dynamic=False)

    @torch.inference_mode()
    def generate(self, ids: torch.Tensor, output: int, ctx=None):
        b, n = ids.shape
        positions = torch.arange(n + output, device=self.device)
        tokens = torch.empty(b, output, dtype=torch.long, device=self.device)
        token = hf_prefill(self.model, self.cache, ids)
        tokens[:, 0] = token
        marks = Marks(self.device)
        marks.mark()
        with ctx if ctx is not None else contextlib.nullcontext():
            for s in range(1, output):
                position = positions[n + s - 1: n + s]
                token = self.step(self.model, self.cache, token, position).clone()
                tokens[:, s] = token
                marks.mark()
            sync(self.device)
        return tokens, marks.deltas_ms()


# --------------------------------------------------------------------------------------------------------- #
# Own decode module                                                                                          #
# --------------------------------------------------------------------------------------------------------- #

def rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(x.dtype)


def rot(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class OwnDecoder:
    """A Llama decode step in plain PyTorch over the HF model's weights and the HF StaticCache's tensors.

    State lives in fixed tensors (tok, pos, hist, K/V) so that one step, written as a function of nothing but
    the bucket length, can be captured as a CUDA graph and replayed: it reads the current token and position,
    writes K/V at the position, appends the next token to hist, and advances tok and pos in place.
    """

    def __init__(self, model, cache: StaticCache, batch: int, max_len: int, device: str, fused: bool,
                 gemv: bool = False):
        c = model.config
        self.device, self.fused, self.gemv = device, fused, gemv
        self.nh, self.nkv = c.num_attention_heads, c.num_key_value_heads
        self.hd = c.hidden_size // self.nh
        self.group = self.nh // self.nkv
        self.eps = c.rms_norm_eps
        self.max_len = max_len
        m = model.model
        self.embed = m.embed_tokens.weight
        self.norm = m.norm.weight
        self.lm_head = model.lm_head.weight
        self.layers = []
        for layer in m.layers:
            a, mlp = layer.self_attn, layer.mlp
            d = dict(ln1=layer.input_layernorm.weight, ln2=layer.post_attention_layernorm.weight,
                     wo=a.o_proj.weight, wd=mlp.down_proj.weight)
            if fused:
                d["wqkv"] = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight], 0).contiguous()
                d["wgu"] = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], 0).contiguous()
            else:
                d.update(wq=a.q_proj.weight, wk=a.k_proj.weight, wv=a.v_proj.weight,
                         wg=mlp.gate_proj.weight, wu=mlp.up_proj.weight)
            self.layers.append(d)
        # RoPE tables exactly as HF computes them (fp32 math, cast to the model dtype)
        dummy = torch.zeros(1, dtype=self.embed.dtype, device=device)
        cos, sin = m.rotary_emb(dummy, torch.arange(max_len, device=device)[None])
        self.cos, self.sin = cos[0].contiguous(), sin[0].contiguous()  # [max_len, hd]
        self.kc = [layer.keys for layer in cache.layers]    # [B, nkv, max_len, hd], static addresses
        self.vc = [layer.values for layer in cache.layers]
        self.tok = torch.zeros(batch, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.hist = torch.zeros(batch, max_len + 1, dtype=torch.long, device=device)
        self.inter = c.intermediate_size
        self.q_out, self.kv_out = self.nh * self.hd, self.nkv * self.hd

    def lin(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.gemv:  # broadcast multiply + sum: inductor turns this into its own reduction (GEMV) kernel
            return (x.unsqueeze(-2) * w).sum(-1)
        return F.linear(x, w)

    def step(self, kv_len: int) -> None:
        b = self.tok.shape[0]
        pos = self.pos
        h = F.embedding(self.tok, self.embed)[:, None, :]                  # [B, 1, H]
        cos = self.cos.index_select(0, pos)[None, None]                    # [1, 1, 1, hd]
        sin = self.sin.index_select(0, pos)[None, None]
        mask = torch.arange(kv_len, device=self.device) <= pos             # [L]
        scale = 1.0 / math.sqrt(self.hd)
        for i, d in enumerate(self.layers):
            x = rms(h, d["ln1"], self.eps)
            if self.fused:
                q, k, v = self.lin(x, d["wqkv"]).split([self.q_out, self.kv_out, self.kv_out], dim=-1)
            else:
                q, k, v = self.lin(x, d["wq"]), self.lin(x, d["wk"]), self.lin(x, d["wv"])
            q = q.view(b, 1, self.nh, self.hd).transpose(1, 2)             # [B, nh, 1, hd]
            k = k.view(b, 1, self.nkv, self.hd).transpose(1, 2)            # [B, nkv, 1, hd]
            v = v.view(b, 1, self.nkv, self.hd).transpose(1, 2)
            q = q * cos + rot(q) * sin
            k = k * cos + rot(k) * sin
            self.kc[i].index_copy_(2, pos, k)
            self.vc[i].index_copy_(2, pos, v)
            keys, values = self.kc[i][:, :, :kv_len], self.vc[i][:, :, :kv_len]
            qg = (q * scale).reshape(b, self.nkv, self.group, self.hd)      # heads of one KV head together
            s = torch.matmul(qg, keys.transpose(-1, -2)).float()           # [B, nkv, group, L]
            s = s.masked_fill(~mask, float("-inf"))
            p = torch.softmax(s, dim=-1).to(qg.dtype)
            o = torch.matmul(p, values).reshape(b, 1, self.nh * self.hd)   # [B, 1, H]
            h = h + self.lin(o, d["wo"])
            x = rms(h, d["ln2"], self.eps)
            if self.fused:
                g, u = self.lin(x, d["wgu"]).split([self.inter, self.inter], dim=-1)
            else:
                g, u = self.lin(x, d["wg"]), self.lin(x, d["wu"])
            h = h + self.lin(F.silu(g) * u, d["wd"])
        h = rms(h, self.norm, self.eps)
        nxt = F.linear(h[:, 0], self.lm_head).argmax(-1) if not self.gemv else \
            self.lin(h[:, 0], self.lm_head).argmax(-1)
        self.tok.copy_(nxt)
        self.hist.index_copy_(1, pos + 1, nxt[:, None])
        self.pos.add_(1)


class OwnRunner:
    def __init__(self, model, cache, batch, input_len, output, device, opts, bucket_default):
        self.model, self.cache, self.device = model, cache, device
        self.input_len, self.output = input_len, output
        self.max_len = input_len + output
        self.dec = OwnDecoder(model, cache, batch, self.max_len, device, opts["fused"], opts.get("gemv", False))
        bucket = opts["bucket"] and bucket_default
        self.bucket = bucket
        mode = opts["compile"]
        fn = self.dec.step
        if mode is not None:
            fn = torch.compile(fn, mode=mode, fullgraph=True, dynamic=False)
        self.fn = fn
        self.lengths = sorted({self.kv_len(p) for p in range(input_len, self.max_len - 1)})
        self.graphs: dict[int, object] = {}
        self.use_graph = device.startswith("cuda")

    def kv_len(self, pos: int) -> int:
        if not self.bucket:
            return self.max_len
        return min(self.max_len, int(math.ceil((pos + 1) / self.bucket) * self.bucket))

    def _set_valid_state(self):
        self.dec.pos.fill_(self.input_len)
        self.dec.tok.zero_()

    @torch.inference_mode()
    def setup(self):
        """Compile (first calls) and capture one graph per KV length. State is reset by every generate."""
        for L in self.lengths:
            self._set_valid_state()
            self.fn(L)
        sync(self.device)
        if not self.use_graph:
            return
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for L in self.lengths:
                for _ in range(2):
                    self._set_valid_state()
                    self.fn(L)
        torch.cuda.current_stream().wait_stream(side)
        sync(self.device)
        for L in self.lengths:
            self._set_valid_state()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                self.fn(L)
            self.graphs[L] = g
        sync(self.device)

    def _replay(self, L):
        if self.use_graph:
            self.graphs[L].replay()
        else:
            self.fn(L)

    @torch.inference_mode()
    def generate(self, ids: torch.Tensor, output: int, ctx=None):
        n = ids.shape[1]
        first = hf_prefill(self.model, self.cache, ids)
        d = self.dec
        d.tok.copy_(first)
        d.pos.fill_(n)
        d.hist.zero_()
        d.hist[:, n] = first
        marks = Marks(self.device)
        marks.mark()
        with ctx if ctx is not None else contextlib.nullcontext():
            for s in range(output - 1):
                self._replay(self.kv_len(n + s))
                marks.mark()
            sync(self.device)
        return d.hist[:, n: n + output].clone(), marks.deltas_ms()


# --------------------------------------------------------------------------------------------------------- #
# Kernel counting                                                                                            #
# --------------------------------------------------------------------------------------------------------- #

def count_kernels(run_decode, steps: int, device: str, top: int = 12) -> dict:
    """On a CPU (test mode) this counts CPU profiler events instead, only to exercise the code."""
    want = torch.autograd.DeviceType.CUDA if device.startswith("cuda") else torch.autograd.DeviceType.CPU
    from torch.profiler import ProfilerActivity, profile
    sync(device)
    prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    run_decode(prof)  # the profiler wraps the decode loop only, not the prefill
    sync(device)
    kernels, memops, busy_us = 0, 0, 0.0
    per_name: dict[str, list] = {}
    for e in prof.events():
        if getattr(e, "device_type", None) != want:
            continue
        name = e.name
        try:
            dur = e.time_range.elapsed_us()
        except Exception:  # noqa: BLE001
            dur = getattr(e, "device_time_total", 0.0)
        if name.startswith("Memcpy") or name.startswith("Memset"):
            memops += 1
        else:
            kernels += 1
        busy_us += dur
        rec = per_name.setdefault(name, [0, 0.0])
        rec[0] += 1
        rec[1] += dur
    tops = sorted(per_name.items(), key=lambda kv: -kv[1][1])[:top]
    return dict(kernels_per_step=kernels / steps, memops_per_step=memops / steps,
                gpu_busy_us_per_step=busy_us / steps,
                top_kernels=[dict(name=k[:120], count_per_step=round(v[0] / steps, 2),
                                  us_per_step=round(v[1] / steps, 2)) for k, v in tops])


# --------------------------------------------------------------------------------------------------------- #

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--input", type=int, default=512)
    ap.add_argument("--output", type=int, default=128)
    ap.add_argument("--plan", default=DEFAULT_PLAN, help="comma list of batch:variant, run in this order")
    ap.add_argument("--bucket", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3, help="timed generations per variant (after 1 warmup)")
    ap.add_argument("--no-cdt", action="store_true", help="coordinate_descent_tuning off")
    ap.add_argument("--budget-s", type=float, default=520.0,
                    help="do not start a compiled variant after this many seconds (eager ones after +40)")
    ap.add_argument("--profile-ref", action="store_true", help="also count kernels of ref_eager (slow)")
    ap.add_argument("--out", default="decode.json")
    args = ap.parse_args()

    device = args.device
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    shape = "tiny" if args.tiny else "tinyllama_1b"
    inductor.coordinate_descent_tuning = not args.no_cdt
    torch._dynamo.config.cache_size_limit = 64
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 64

    env = dict(python=sys.version.split()[0], platform=platform.platform(), torch=torch.__version__,
               transformers=transformers.__version__, triton=None, device=device, dtype=str(dtype),
               shape=shape, shape_config=SHAPES[shape], input=args.input, output=args.output,
               bucket=args.bucket, runs=args.runs, coordinate_descent_tuning=not args.no_cdt)
    try:
        import triton
        env["triton"] = triton.__version__
    except Exception:  # noqa: BLE001
        pass
    if device.startswith("cuda"):
        env.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda,
                   sm_count=torch.cuda.get_device_properties(0).multi_processor_count)
        try:
            import pynvml
            pynvml.nvmlInit()
            env["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception as e:  # noqa: BLE001
            env["driver"] = f"unknown ({e!r})"
    bw = measure_bandwidth_gb_s(device)
    env["copy_bandwidth_gb_s"] = bw
    log(f"env {env}")

    model = build_model(shape, device, dtype)
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    weight_bytes = n_params * torch.finfo(dtype).bits // 8
    kv_per_token = 2 * c.num_hidden_layers * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) \
        * (torch.finfo(dtype).bits // 8)
    env.update(params=n_params, weight_bytes=weight_bytes, kv_bytes_per_token=kv_per_token)
    log(f"model built: {n_params / 1e9:.3f} B params, weights {weight_bytes / 1e9:.3f} GB")

    results = dict(env=env, rows=[], errors=[])

    def save():
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=str)

    caches: dict[int, StaticCache] = {}
    refs: dict[int, torch.Tensor] = {}
    inputs: dict[int, torch.Tensor] = {}
    steps = args.output - 1

    def get_inputs(b):
        if b not in inputs:
            g = torch.Generator().manual_seed(1000 + b)
            inputs[b] = torch.randint(3, c.vocab_size, (b, args.input), generator=g).to(device)
        return inputs[b]

    def get_cache(b):
        if b not in caches:
            cache = StaticCache(config=c, max_cache_len=args.input + args.output)
            with torch.inference_mode():
                hf_prefill(model, cache, get_inputs(b))  # lazily allocates the layers' tensors
            caches[b] = cache
        return caches[b]

    for item in args.plan.split(","):
        b_s, name = item.split(":")
        b = int(b_s)
        opts = VARIANTS[name]
        compiled = name == "hf_loop" or (opts is not None and opts["compile"] is not None)
        limit = args.budget_s if compiled else args.budget_s + 40
        if time.perf_counter() - T0 > limit:
            results["errors"].append(dict(variant=name, batch=b, error="skipped: time budget"))
            log(f"skip b{b} {name}: budget")
            save()
            continue
        log(f"start b{b} {name}")
        runner = None
        try:
            ids = get_inputs(b)
            t_setup = time.perf_counter()
            if name == "ref_eager":
                gen = lambda ctx=None: ref_generate(model, ids, args.output, device, ctx)  # noqa: E731
            elif name == "hf_loop":
                runner = HfLoop(model, get_cache(b), device)
                gen = lambda ctx=None: runner.generate(ids, args.output, ctx)  # noqa: E731
            else:
                runner = OwnRunner(model, get_cache(b), b, args.input, args.output, device, opts, args.bucket)
                runner.setup()
                gen = lambda ctx=None: runner.generate(ids, args.output, ctx)  # noqa: E731
            tokens, _ = gen()  # warmup (hf_loop compiles and records its graph here)
            sync(device)
            setup_s = time.perf_counter() - t_setup
            deltas = []
            for _ in range(args.runs if name != "ref_eager" else 1):
                tokens, d = gen()
                deltas += d
            if name == "ref_eager":
                refs[b] = tokens
            tpot = statistics.median(deltas)
            bytes_step = weight_bytes + kv_per_token * b * (args.input + args.output / 2)
            row = dict(variant=name, batch=b, setup_s=round(setup_s, 1), steps_timed=len(deltas),
                       tpot_ms=round(tpot, 4), tpot_mean_ms=round(statistics.mean(deltas), 4),
                       tpot_p10_ms=round(sorted(deltas)[len(deltas) // 10], 4),
                       tpot_p90_ms=round(sorted(deltas)[(9 * len(deltas)) // 10], 4),
                       bytes_per_step=bytes_step,
                       mbu_pct=round(100 * bytes_step / (tpot / 1e3) / (bw * 1e9), 2) if bw else None,
                       mbu_vs_4232_pct=round(100 * bytes_step / (tpot / 1e3) / (PROJECT_BW_GB_S * 1e9), 2),
                       output_tok_s=round(b * 1e3 / tpot, 1))
            if name != "ref_eager" and hasattr(runner, "lengths"):
                row["kv_lengths"] = runner.lengths
            if b in refs:
                pos, rows_eq = first_diff(tokens, refs[b])
                row.update(tokens_match=pos is None, first_diff_pos=pos, rows_equal=f"{rows_eq}/{b}")
            else:
                row.update(tokens_match=None, first_diff_pos="no reference")
            try:
                if name != "ref_eager" or args.profile_ref:
                    row.update(count_kernels(gen, steps, device))
            except Exception as e:  # noqa: BLE001
                row["kernel_count_error"] = repr(e)
            results["rows"].append(row)
            log(f"b{b} {name}: TPOT {row['tpot_ms']:.4f} ms MBU {row['mbu_pct']}% kernels/step "
                f"{row.get('kernels_per_step')} busy {row.get('gpu_busy_us_per_step')} us match "
                f"{row.get('tokens_match')} first_diff {row.get('first_diff_pos')} setup {setup_s:.1f}s")
            runner = None
        except Exception as e:  # noqa: BLE001
            results["errors"].append(dict(variant=name, batch=b, error=repr(e)[:2000],
                                          tb=traceback.format_exc()[-4000:]))
            log(f"b{b} {name} FAILED: {e!r}"[:2000])
            runner = None
        save()

    print("\nvariant              batch  TPOT ms   MBU %  MBU%@4232  kern/step  busy us  match  first_diff  setup s")
    for r in results["rows"]:
        print(f"{r['variant']:<20} {r['batch']:>5} {r['tpot_ms']:>8.4f} {str(r['mbu_pct']):>7} "
              f"{r['mbu_vs_4232_pct']:>9} {str(round(r.get('kernels_per_step', float('nan')), 1)):>10} "
              f"{str(round(r.get('gpu_busy_us_per_step', float('nan')), 1)):>8} {str(r['tokens_match']):>6} "
              f"{str(r['first_diff_pos']):>11} {r['setup_s']:>8}")
    for e in results["errors"]:
        print("ERROR", e["variant"], e.get("batch"), e["error"][:300])
    save()


if __name__ == "__main__":
    main()
