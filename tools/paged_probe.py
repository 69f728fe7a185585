"""Paged KV taken apart: transformers continuous batching (paged|sdpa) with CUDA graphs off / on and with
compile on, against plain eager `generate` (dynamic cache), on a random-weight TinyLlama-1.1B shape.

Self-contained (torch + transformers + stdlib only; not the inference_study package).

    PYTHONUNBUFFERED=1 python tools/paged_probe.py --out $OUT/paged.json            # GPU, full shape
    python tools/paged_probe.py --device cpu --tiny --batches 1,2 --input 32 --output 8 --out /tmp/p.json

Variants (all greedy, EOS disabled, exact output length, fixed pool of num_blocks x block_size):
  eager_generate      model.generate with the default DynamicCache, sdpa
  paged_graphs_off    ContinuousBatchingConfig defaults as the project runs it (use_cuda_graph resolves to off
                      for paged|sdpa; no compile)
  paged_graphs_on     use_cuda_graph=True (default padding: q 64 tokens, kv 16384 tokens)
  paged_graphs_on_kv1k use_cuda_graph=True, kv_padding_interval_size=1024 (smaller KV padding)
  paged_compile1      default_compile_level=1 (torch.compile mode default, dynamic=True), graphs off
  paged_compile1_graphs default_compile_level=1 + use_cuda_graph=True

Per (variant, batch): one warmup call at the same shape (compile/capture happen there; its wall time is
reported as warmup_s), then one timed call. TPOT = median over requests of (t_last - t_first)/(n - 1) from
the per-token host timestamps (the manager's own for paged, a streamer's for generate). Output tok/s =
batch * output / (last token time - submit time).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, ContinuousBatchingConfig, GenerationConfig, LlamaConfig
from transformers.generation.continuous_batching import RequestStatus
from transformers.generation.streamers import BaseStreamer

T0 = time.perf_counter()

SHAPES = {
    "tinyllama_1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4),
    "tiny": dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
}

VARIANTS = {
    "eager_generate": None,
    "paged_graphs_off": dict(),
    "paged_graphs_on": dict(use_cuda_graph=True),
    "paged_graphs_on_kv1k": dict(use_cuda_graph=True, kv_padding_interval_size=1024),
    "paged_compile1": dict(default_compile_level=1),
    "paged_compile1_graphs": dict(default_compile_level=1, use_cuda_graph=True),
}


def log(msg: str) -> None:
    print(f"[paged {time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build_model(shape: str, device: str, dtype: torch.dtype):
    cfg = LlamaConfig(**SHAPES[shape], rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096,
                      tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def prompts(batch: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (batch, length), generator=g).tolist()


class Stamps(BaseStreamer):
    """One host time per streamer put; the first put is the prompt."""

    def __init__(self):
        self.times: list[float] = []
        self.first = True

    def put(self, value):
        if self.first:
            self.first = False
            return
        self.times.append(time.perf_counter())

    def end(self):
        pass


def first_diff(a: list[list[int]], b: list[list[int]]) -> int | None:
    """First token position where any row differs (None: identical)."""
    worst = None
    for x, y in zip(a, b):
        for i, (p, q) in enumerate(zip(x, y)):
            if p != q:
                worst = i if worst is None else min(worst, i)
                break
        else:
            if len(x) != len(y):
                n = min(len(x), len(y))
                worst = n if worst is None else min(worst, n)
    return worst


def run_generate(model, ids: list[list[int]], output: int, device: str) -> dict:
    x = torch.tensor(ids, device=device)
    gcfg = GenerationConfig(max_new_tokens=output, min_new_tokens=output, do_sample=False,
                            eos_token_id=None, pad_token_id=0)
    streamer = Stamps()
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gcfg, streamer=streamer)
    sync(device)
    end = time.perf_counter()
    tokens = out[:, x.shape[1]:].tolist()
    t = streamer.times
    tpot = (t[-1] - t[0]) / (len(t) - 1) if len(t) > 1 else None
    itl = [b - a for a, b in zip(t, t[1:])]
    return dict(tokens=tokens, wall_s=end - start, ttft_ms=(t[0] - start) * 1e3 if t else None,
                tpot_ms=tpot * 1e3 if tpot else None, itl_p50_ms=statistics.median(itl) * 1e3 if itl else None,
                output_tok_s=len(ids) * output / ((t[-1] if t else end) - start))


class PagedRunner:
    def __init__(self, model, output: int, extra: dict, block_size: int, num_blocks: int, max_batch_tokens: int):
        self.model = model
        gcfg = GenerationConfig(max_new_tokens=output, do_sample=False, eos_token_id=-1, pad_token_id=0)
        self.cbc = ContinuousBatchingConfig(block_size=block_size, num_blocks=num_blocks,
                                            max_batch_tokens=max_batch_tokens, allow_block_sharing=False, **extra)
        self.manager = model.init_continuous_batching(generation_config=gcfg, continuous_batching_config=self.cbc)
        self.manager.warmup()
        self.manager.start()
        bp = self.manager.batch_processor
        resolved = getattr(bp, "cb_config", None) or getattr(self.manager, "continuous_batching_config", None)
        self.resolved = {}
        for key in ("use_cuda_graph", "use_async_batching", "varlen_compile_config", "decode_compile_config",
                     "max_blocks_per_request", "q_padding_interval_size", "kv_padding_interval_size",
                     "default_compile_level"):
            if resolved is not None and hasattr(resolved, key):
                val = getattr(resolved, key)
                self.resolved[key] = val.to_dict() if hasattr(val, "to_dict") else val
        try:
            self.resolved["attn_implementation_during_cb"] = model.config._attn_implementation
        except Exception:  # noqa: BLE001
            pass

    def run(self, ids: list[list[int]], output: int, device: str) -> dict:
        sync(device)
        start = time.perf_counter()
        rids = self.manager.add_requests(ids, max_new_tokens=output, record_timestamps=True)
        done = {}
        while len(done) < len(rids):
            out = self.manager.get_result(timeout=1.0)
            if out is None:
                if not self.manager.is_running():
                    raise RuntimeError("continuous batching thread stopped")
                if time.perf_counter() - start > 300:
                    raise TimeoutError("paged run took over 300 s")
                continue
            if out.status == RequestStatus.FAILED:
                raise RuntimeError(f"request {out.request_id} failed: {getattr(out, 'error', None)}")
            if out.is_finished():
                done[out.request_id] = out
        end = time.perf_counter()
        outs = [done[r] for r in rids]
        tokens = [list(o.generated_tokens) for o in outs]
        tpots, itl, lasts, ttfts = [], [], [], []
        for o in outs:
            t = list(o.timestamps or [])
            if len(t) > 1:
                tpots.append((t[-1] - t[0]) / (len(t) - 1))
                itl += [b - a for a, b in zip(t, t[1:])]
            if t:
                lasts.append(t[-1])
                ttfts.append(t[0] - start)
        last = max(lasts) if lasts else end
        return dict(tokens=tokens, wall_s=end - start,
                    ttft_ms=statistics.median(ttfts) * 1e3 if ttfts else None,
                    tpot_ms=statistics.median(tpots) * 1e3 if tpots else None,
                    itl_p50_ms=statistics.median(itl) * 1e3 if itl else None,
                    output_tok_s=len(ids) * output / (last - start))

    def close(self):
        try:
            self.manager.stop(block=True, timeout=60)
        except Exception as e:  # noqa: BLE001
            log(f"stop failed: {e!r}")
        try:
            self.manager.destroy()
        except Exception as e:  # noqa: BLE001
            log(f"destroy failed: {e!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shape for a CPU test")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--input", type=int, default=512)
    ap.add_argument("--output", type=int, default=128)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--block-size", type=int, default=32)
    ap.add_argument("--num-blocks", type=int, default=2304)
    ap.add_argument("--max-batch-tokens", type=int, default=8192)
    ap.add_argument("--budget-s", type=float, default=400.0, help="skip what would start after this many seconds")
    ap.add_argument("--out", default="paged.json")
    args = ap.parse_args()

    device = args.device
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    shape = "tiny" if args.tiny else "tinyllama_1b"
    batches = [int(b) for b in args.batches.split(",")]
    env = dict(python=sys.version.split()[0], platform=platform.platform(), torch=torch.__version__,
               transformers=transformers.__version__, device=device, dtype=str(dtype), shape=shape,
               shape_config=SHAPES[shape], input=args.input, output=args.output, block_size=args.block_size,
               num_blocks=args.num_blocks, max_batch_tokens=args.max_batch_tokens)
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    log(f"env {env}")
    model = build_model(shape, device, dtype)
    vocab = model.config.vocab_size
    inputs = {b: prompts(b, args.input, vocab, seed=b) for b in batches}
    results = dict(env=env, rows=[], errors=[])
    reference: dict[int, list[list[int]]] = {}

    def save():
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=str)

    for name in args.variants.split(","):
        extra = VARIANTS[name]
        if time.perf_counter() - T0 > args.budget_s:
            results["errors"].append(dict(variant=name, error="skipped: time budget"))
            log(f"skip {name}: budget")
            continue
        runner = None
        try:
            t_setup = time.perf_counter()
            if extra is not None:
                runner = PagedRunner(model, args.output, extra, args.block_size, args.num_blocks,
                                     args.max_batch_tokens)
                log(f"{name}: manager up in {time.perf_counter() - t_setup:.1f}s resolved={runner.resolved}")
            for b in batches:
                if time.perf_counter() - T0 > args.budget_s:
                    results["errors"].append(dict(variant=name, batch=b, error="skipped: time budget"))
                    continue
                ids = inputs[b]
                fn = (lambda: run_generate(model, ids, args.output, device)) if runner is None else \
                    (lambda: runner.run(ids, args.output, device))
                tw = time.perf_counter()
                fn()
                warm = time.perf_counter() - tw
                r = fn()
                toks = r.pop("tokens")
                exact = all(len(t) == args.output for t in toks)
                if name == "eager_generate":
                    reference[b] = toks
                diff = first_diff(toks, reference[b]) if b in reference else "no reference"
                row = dict(variant=name, batch=b, warmup_s=round(warm, 2), exact_length=exact,
                           first_diff_vs_eager=diff, **{k: (round(v, 4) if isinstance(v, float) else v)
                                                       for k, v in r.items()})
                if runner is not None:
                    row["resolved"] = runner.resolved
                results["rows"].append(row)
                log(f"{name} b{b}: tok/s {r['output_tok_s']:.1f} TPOT {r['tpot_ms']} ms TTFT {r['ttft_ms']} ms "
                    f"warmup {warm:.1f}s exact={exact} diff={diff}")
                save()
        except Exception as e:  # noqa: BLE001
            import traceback
            results["errors"].append(dict(variant=name, error=repr(e), tb=traceback.format_exc()[-3000:]))
            log(f"{name} FAILED: {e!r}")
        finally:
            if runner is not None:
                runner.close()
            save()
    # final table
    print("\nvariant                 batch  tok/s     TPOT ms  TTFT ms  warmup s  exact  first_diff")
    for r in results["rows"]:
        print(f"{r['variant']:<23} {r['batch']:>5} {r['output_tok_s']:>9.1f} {r['tpot_ms'] or float('nan'):>8.2f} "
              f"{r['ttft_ms'] or float('nan'):>8.1f} {r['warmup_s']:>8.1f}  {str(r['exact_length']):<5}  "
              f"{r['first_diff_vs_eager']}")
    for e in results["errors"]:
        print("ERROR", e.get("variant"), e.get("batch", ""), e["error"])
    save()


if __name__ == "__main__":
    main()
