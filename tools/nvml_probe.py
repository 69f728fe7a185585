"""What NVML's throttle counters say on a Hopper GPU while a steady load runs.

Self-contained: torch + pynvml (nvidia-ml-py) + stdlib; the decode load reuses tools/decode_probe.py (a file
beside this one, itself only torch + transformers). A child process samples NVML every --interval-ms while
the parent runs, in turn: idle, a batch-32 decode loop (own Llama decode step of the TinyLlama-1.1B shape
as one CUDA graph, replayed back to back), idle, a large fp16 matmul loop, idle. Per sample: violation
status (power, thermal and the other perf policies: raw referenceTime/violationTime), the current clocks
event (throttle) reasons bitmask, the per-reason throttle-duration field values, SM/memory clocks, power,
power limits, temperature, utilization, pstate; plus the driver's own sample buffers (nvmlDeviceGetSamples)
for SM clock, memory clock and power, drained each tick.

    PYTHONUNBUFFERED=1 python tools/nvml_probe.py --out $OUT/nvml.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

REASON_BITS = {
    0x1: "GpuIdle", 0x2: "ApplicationsClocksSetting", 0x4: "SwPowerCap", 0x8: "HwSlowdown",
    0x10: "SyncBoost", 0x20: "SwThermalSlowdown", 0x40: "HwThermalSlowdown", 0x80: "HwPowerBrakeSlowdown",
    0x100: "DisplayClockSetting",
}


def _opt(fn, *a):
    try:
        return fn(*a)
    except Exception as e:  # noqa: BLE001
        return f"ERR {type(e).__name__}: {e}"


def policies(p):
    names = ["POWER", "THERMAL", "SYNC_BOOST", "BOARD_LIMIT", "LOW_UTILIZATION", "RELIABILITY",
             "TOTAL_APP_CLOCKS", "TOTAL_BASE_CLOCKS"]
    return {n: getattr(p, f"NVML_PERF_POLICY_{n}") for n in names if hasattr(p, f"NVML_PERF_POLICY_{n}")}


def field_ids(p):
    names = ["NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP", "NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST",
             "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN", "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN",
             "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN", "NVML_FI_DEV_PERF_POLICY_POWER",
             "NVML_FI_DEV_PERF_POLICY_THERMAL"]
    return {n.replace("NVML_FI_DEV_", ""): getattr(p, n) for n in names if hasattr(p, n)}


def read_fields(p, h, ids: dict) -> dict:
    out = {}
    try:
        vals = p.nvmlDeviceGetFieldValues(h, list(ids.values()))
    except Exception as e:  # noqa: BLE001
        return {"error": repr(e)}
    for (name, _), v in zip(ids.items(), vals):
        if getattr(v, "nvmlReturn", 0) != 0:
            out[name] = f"ret {v.nvmlReturn}"
            continue
        vt = getattr(v, "valueType", None)
        val = v.value
        # valueType 0 double, 1 uint, 2 ulong, 3 ulonglong, 4 slonglong, 5 sint ...
        attr = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}.get(vt, "ullVal")
        out[name] = getattr(val, attr, None)
    return out


def snapshot(p, h, pol: dict, fids: dict) -> dict:
    reasons_fn = getattr(p, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        getattr(p, "nvmlDeviceGetCurrentClocksThrottleReasons")
    s = dict(t=time.time())
    s["sm_mhz"] = _opt(p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_SM)
    s["mem_mhz"] = _opt(p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_MEM)
    s["gr_mhz"] = _opt(p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_GRAPHICS)
    s["power_mw"] = _opt(p.nvmlDeviceGetPowerUsage, h)
    s["enforced_limit_mw"] = _opt(p.nvmlDeviceGetEnforcedPowerLimit, h)
    s["temp_c"] = _opt(p.nvmlDeviceGetTemperature, h, p.NVML_TEMPERATURE_GPU)
    u = _opt(p.nvmlDeviceGetUtilizationRates, h)
    s["util_gpu"] = getattr(u, "gpu", u)
    s["util_mem"] = getattr(u, "memory", None)
    s["pstate"] = _opt(p.nvmlDeviceGetPerformanceState, h)
    s["reasons"] = _opt(reasons_fn, h)
    s["energy_mj"] = _opt(p.nvmlDeviceGetTotalEnergyConsumption, h)
    viol = {}
    for name, code in pol.items():
        v = _opt(p.nvmlDeviceGetViolationStatus, h, code)
        viol[name] = [v.referenceTime, v.violationTime] if hasattr(v, "violationTime") else v
    s["viol"] = viol
    s["fields"] = read_fields(p, h, fids)
    return s


def sampler(path: str, stop, interval_s: float) -> None:
    import pynvml as p
    p.nvmlInit()
    h = p.nvmlDeviceGetHandleByIndex(0)
    pol, fids = policies(p), field_ids(p)
    kinds = {"sm_clk": p.NVML_PROCESSOR_CLK_SAMPLES, "mem_clk": p.NVML_MEMORY_CLK_SAMPLES,
             "power": p.NVML_TOTAL_POWER_SAMPLES, "gpu_util": p.NVML_GPU_UTILIZATION_SAMPLES}
    seen = {k: 0 for k in kinds}
    buffers = {k: [] for k in kinds}
    buf_errors = {}
    ticks = []
    while not stop.is_set():
        t0 = time.time()
        ticks.append(snapshot(p, h, pol, fids))
        for k, code in kinds.items():
            try:
                vtype, samples = p.nvmlDeviceGetSamples(h, code, seen[k])
                for smp in samples:
                    if smp.timeStamp > seen[k]:
                        val = smp.sampleValue
                        buffers[k].append([smp.timeStamp, getattr(val, "uiVal", None)])
                seen[k] = max([seen[k], *(smp.timeStamp for smp in samples)])
            except Exception as e:  # noqa: BLE001
                buf_errors[k] = repr(e)
        ticks[-1]["tick_cost_ms"] = (time.time() - t0) * 1e3
        time.sleep(max(0.0, interval_s - (time.time() - t0)))
    with open(path, "w") as f:
        json.dump(dict(ticks=ticks, buffers=buffers, buffer_errors=buf_errors), f)


def decode_load(batch: int, seconds: float, input_len: int, output: int):
    """Replay the own-module decode graph (fused, eager ops, one CUDA graph per step) back to back."""
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import decode_probe as dp
    from transformers import StaticCache
    model = dp.build_model("tinyllama_1b", "cuda", torch.float16)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(3, model.config.vocab_size, (batch, input_len), generator=g).cuda()
    cache = StaticCache(config=model.config, max_cache_len=input_len + output)
    with torch.inference_mode():
        dp.hf_prefill(model, cache, ids)
    runner = dp.OwnRunner(model, cache, batch, input_len, output, "cuda",
                          dict(fused=True, bucket=0, compile=None), 0)
    runner.setup()
    L = runner.lengths[0]
    graph = runner.graphs[L]

    def go():
        steps = 0
        end = time.time() + seconds
        t = time.perf_counter()
        with torch.inference_mode():
            while time.time() < end:
                runner.dec.pos.fill_(input_len)
                for _ in range(output - 1):
                    graph.replay()
                steps += output - 1
                torch.cuda.synchronize()
        return dict(steps=steps, step_ms=(time.perf_counter() - t) / steps * 1e3)
    return go


def matmul_load(seconds: float, n: int = 8192):
    import torch
    a = torch.randn(n, n, dtype=torch.float16, device="cuda")
    b = torch.randn(n, n, dtype=torch.float16, device="cuda")
    c = torch.empty(n, n, dtype=torch.float16, device="cuda")

    def go():
        iters = 0
        end = time.time() + seconds
        t = time.perf_counter()
        while time.time() < end:
            for _ in range(10):
                torch.mm(a, b, out=c)
            iters += 10
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        return dict(iters=iters, tflops=2 * n ** 3 * iters / dt / 1e12)
    return go


def summarize(ticks: list, buffers: dict, t0: float, t1: float) -> dict:
    win = [s for s in ticks if t0 <= s["t"] <= t1]
    out = dict(ticks=len(win), seconds=round(t1 - t0, 2))
    if len(win) < 2:
        return out

    def nums(key):
        return [s[key] for s in win if isinstance(s[key], (int, float))]

    for key in ("sm_mhz", "mem_mhz", "power_mw", "temp_c", "util_gpu", "enforced_limit_mw", "pstate"):
        v = nums(key)
        if v:
            out[key] = dict(min=min(v), median=statistics.median(v), max=max(v))
    bits_seen = {}
    for s in win:
        r = s["reasons"]
        if isinstance(r, int):
            for bit, name in REASON_BITS.items():
                if r & bit:
                    bits_seen[name] = bits_seen.get(name, 0) + 1
            unknown = r & ~sum(REASON_BITS)
            if unknown:
                bits_seen[f"unknown_0x{unknown:x}"] = bits_seen.get(f"unknown_0x{unknown:x}", 0) + 1
    out["reason_bits_share_of_ticks"] = {k: round(v / len(win), 3) for k, v in bits_seen.items()}
    out["reason_values_seen"] = sorted({hex(s["reasons"]) for s in win if isinstance(s["reasons"], int)})
    a, b = win[0], win[-1]
    wall_ns = (b["t"] - a["t"]) * 1e9
    viol = {}
    for name, va in a["viol"].items():
        vb = b["viol"].get(name)
        if isinstance(va, list) and isinstance(vb, list):
            d_ref_us, d_viol = vb[0] - va[0], vb[1] - va[1]
            viol[name] = dict(d_violation_raw=d_viol, d_reference_raw=d_ref_us,
                              share_of_wall_if_ns=round(d_viol / wall_ns, 4),
                              share_of_reference_if_ns_and_us=round(d_viol / (d_ref_us * 1e3), 4) if d_ref_us else None)
        else:
            viol[name] = va
    out["violation_deltas"] = viol
    # how many ticks saw the power-violation counter advance, and the SM clock at those ticks
    adv, adv_clk = 0, []
    for s0, s1 in zip(win, win[1:]):
        p0, p1 = s0["viol"].get("POWER"), s1["viol"].get("POWER")
        if isinstance(p0, list) and isinstance(p1, list) and p1[1] > p0[1]:
            adv += 1
            if isinstance(s1["sm_mhz"], int):
                adv_clk.append(s1["sm_mhz"])
    out["power_counter_advanced_in_intervals"] = f"{adv}/{len(win) - 1}"
    if adv_clk:
        out["sm_mhz_when_power_counter_advanced"] = dict(min=min(adv_clk), max=max(adv_clk))
    fa, fb = a["fields"], b["fields"]
    if isinstance(fa, dict) and isinstance(fb, dict):
        out["field_deltas"] = {k: (fb[k] - fa[k]) if isinstance(fa.get(k), (int, float)) and
                               isinstance(fb.get(k), (int, float)) else [fa.get(k), fb.get(k)] for k in fa}
    if isinstance(a["energy_mj"], int) and isinstance(b["energy_mj"], int):
        out["energy_power_w"] = round((b["energy_mj"] - a["energy_mj"]) / 1e3 / (b["t"] - a["t"]), 1)
    for k, rows in buffers.items():
        # driver timestamps are microseconds since the epoch
        v = [x[1] for x in rows if t0 * 1e6 <= x[0] <= t1 * 1e6 and x[1] is not None]
        if v:
            out[f"buffer_{k}"] = dict(n=len(v), min=min(v), median=statistics.median(v), max=max(v))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval-ms", type=float, default=50.0)
    ap.add_argument("--load-s", type=float, default=12.0)
    ap.add_argument("--idle-s", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--input", type=int, default=512)
    ap.add_argument("--output", type=int, default=128)
    ap.add_argument("--out", default="nvml.json")
    args = ap.parse_args()

    import pynvml as p
    import torch
    p.nvmlInit()
    h = p.nvmlDeviceGetHandleByIndex(0)
    env = dict(gpu=p.nvmlDeviceGetName(h), driver=p.nvmlSystemGetDriverVersion(),
               nvml_version=_opt(p.nvmlSystemGetNVMLVersion), cuda_driver=_opt(p.nvmlSystemGetCudaDriverVersion),
               pynvml_module=getattr(p, "__version__", None), torch=torch.__version__,
               max_sm_mhz=_opt(p.nvmlDeviceGetMaxClockInfo, h, p.NVML_CLOCK_SM),
               max_mem_mhz=_opt(p.nvmlDeviceGetMaxClockInfo, h, p.NVML_CLOCK_MEM),
               power_limit_mw=_opt(p.nvmlDeviceGetPowerManagementLimit, h),
               default_power_limit_mw=_opt(p.nvmlDeviceGetPowerManagementDefaultLimit, h),
               enforced_power_limit_mw=_opt(p.nvmlDeviceGetEnforcedPowerLimit, h),
               power_limit_constraints_mw=_opt(p.nvmlDeviceGetPowerManagementLimitConstraints, h),
               supported_reasons=_opt(getattr(p, "nvmlDeviceGetSupportedClocksEventReasons", None) or
                                      p.nvmlDeviceGetSupportedClocksThrottleReasons, h),
               applications_sm_mhz=_opt(p.nvmlDeviceGetApplicationsClock, h, p.NVML_CLOCK_SM),
               interval_ms=args.interval_ms)
    if isinstance(env["supported_reasons"], int):
        env["supported_reason_names"] = [n for b, n in REASON_BITS.items() if env["supported_reasons"] & b]
    print("env", env, flush=True)

    # build the loads before sampling starts (model build and graph capture are not part of the phases)
    dec = decode_load(args.batch, args.load_s, args.input, args.output)
    mm = matmul_load(args.load_s)
    torch.cuda.synchronize()

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    path = args.out + ".samples.tmp"
    proc = ctx.Process(target=sampler, args=(path, stop, args.interval_ms / 1e3))
    proc.start()
    time.sleep(1.0)
    phases = []

    def phase(name, fn=None):
        t0 = time.time()
        info = fn() if fn else time.sleep(args.idle_s)
        phases.append(dict(name=name, t0=t0, t1=time.time(), info=info))
        print(f"phase {name}: {time.time() - t0:.1f}s {info or ''}", flush=True)

    phase("idle_before")
    phase(f"decode_b{args.batch}", dec)
    phase("idle_between")
    phase("matmul_8192_fp16", mm)
    phase("idle_after")
    stop.set()
    proc.join(timeout=30)
    with open(path) as f:
        data = json.load(f)
    os.remove(path)
    res = dict(env=env, phases=[])
    for ph in phases:
        s = summarize(data["ticks"], data["buffers"], ph["t0"], ph["t1"])
        res["phases"].append(dict(name=ph["name"], load=ph["info"], **s))
    res["buffer_errors"] = data["buffer_errors"]
    res["tick_cost_ms_median"] = statistics.median([t["tick_cost_ms"] for t in data["ticks"]]) if data["ticks"] else None
    res["first_tick"] = data["ticks"][0] if data["ticks"] else None
    # a thinned raw trace for the record (every 4th tick)
    res["trace"] = [{k: s[k] for k in ("t", "sm_mhz", "mem_mhz", "power_mw", "reasons", "viol", "temp_c")}
                    for s in data["ticks"][::4]]
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1, default=str)
    for ph in res["phases"]:
        brief = {k: ph.get(k) for k in ("seconds", "sm_mhz", "mem_mhz", "power_mw", "reason_values_seen",
                                         "reason_bits_share_of_ticks", "power_counter_advanced_in_intervals",
                                         "energy_power_w")}
        print(ph["name"], json.dumps(brief, default=str))
        print("   violation_deltas", json.dumps(ph.get("violation_deltas"), default=str))
        print("   field_deltas", json.dumps(ph.get("field_deltas"), default=str))
        print("   buffers", json.dumps({k: v for k, v in ph.items() if k.startswith("buffer_")}, default=str))


if __name__ == "__main__":
    main()
