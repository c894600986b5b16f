"""model/nf4 against tests/nf4/nf4_reference.py (numpy, from bitsandbytes' published
algorithm): packed codes, first-stage absmax, nested absmax codes, nested scales and offset bit
for bit, and the dequantized values equal, on random and adversarial arrays; NaN and inf refused
naming the element. When PyTorch is importable the reference's dynamic map is also checked
against bitsandbytes' create_dynamic_map run as written, under torch.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nf4_reference as ref  # noqa: E402

f32 = np.float32
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def bits(a):
    return np.asarray(a, dtype=f32).view(np.uint32)


def run_driver(driver, work, name, x, blocksize):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    inp = os.path.join(d, "input.f32")
    np.asarray(x, dtype=f32).tofile(inp)
    p = subprocess.run([driver, inp, str(blocksize), d], capture_output=True, text=True)
    return p, d


def load(d, name, dtype):
    return np.fromfile(os.path.join(d, name), dtype=dtype)


def compare_case(driver, work, name, x, blocksize=64):
    x = np.asarray(x, dtype=f32)
    p, d = run_driver(driver, work, name, x, blocksize)
    if p.returncode != 0:
        check(False, f"{name}: driver exit {p.returncode}: {p.stderr.strip()}")
        return
    q = ref.quantize(x, blocksize)
    meta = json.load(open(os.path.join(d, "meta.json")))
    n = x.size
    check(np.array_equal(load(d, "codes.u8", np.uint8), q["codes"]), f"{name}: packed codes")
    check(np.array_equal(bits(load(d, "absmax.f32", f32)), bits(q["absmax"])), f"{name}: first-stage absmax")
    check(np.array_equal(load(d, "absmax_codes.u8", np.uint8), q["absmax_codes"]), f"{name}: nested absmax codes")
    check(np.array_equal(bits(load(d, "nested_scales.f32", f32)), bits(q["nested_scales"])), f"{name}: nested scales")
    want_offset = int(bits(q["offset"]))
    check(meta["offset_bits"] == want_offset, f"{name}: offset bits {meta['offset_bits']} vs {want_offset}")
    dq_ref = ref.dequantize(q, n, blocksize)
    dq = load(d, "dequant.f32", f32)
    # Equal as values (an all-zero block's -0.0 against 0.0 would still pass; bits checked too).
    check(np.array_equal(bits(dq), bits(dq_ref)), f"{name}: dequantized values "
          f"({int((bits(dq) != bits(dq_ref)).sum())} of {n} differ)")
    if n >= 6:
        rows = load(d, "rows.f32", f32)
        cols = 3
        check(np.array_equal(bits(rows), bits(dq_ref[cols:(n // cols) * cols])), f"{name}: dequantize_rows")
    blocks = -(-n // blocksize)
    expect_bytes = (n + 1) // 2 + blocks + 4 * (-(-blocks // 256)) + 4
    check(meta["bytes"] == expect_bytes and meta["nf4_bytes"] == expect_bytes, f"{name}: bytes {meta}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rng = np.random.default_rng(24)
    drv, work = args.driver, args.work

    # The dynamic map: driver, reference, and (when torch is here) bitsandbytes' own code.
    map_path = os.path.join(work, "map.f32")
    subprocess.run([drv, "--map", map_path], check=True)
    cmap = np.fromfile(map_path, dtype=f32)
    check(np.array_equal(bits(cmap), bits(ref.DYNAMIC_MAP)), "dynamic map: driver vs reference")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        data = []
        for i in range(7):  # create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) as written
            boundaries = torch.linspace(0.1, 1, int(2 ** i + 1))
            means = (boundaries[:-1] + boundaries[1:]) / 2.0
            data += ((10 ** (-(7 - 1) + i)) * means).tolist()
            data += (-(10 ** (-(7 - 1) + i)) * means).tolist()
        data.append(0)
        data.append(1.0)
        data.sort()
        tmap = torch.tensor(data, dtype=torch.float32).numpy()
        check(np.array_equal(bits(tmap), bits(ref.DYNAMIC_MAP)), "dynamic map: reference vs torch create_dynamic_map")
        print("dynamic map checked against torch", torch.__version__)

    # Single-value quantizers on midpoints and their float neighbours.
    def neighbours(v):
        v = np.asarray(v, dtype=f32)
        return np.concatenate([v, np.nextafter(v, f32(-2)), np.nextafter(v, f32(2))]).astype(f32)

    nf4_in = np.concatenate([neighbours(ref.NF4_THRESHOLDS), neighbours(ref.NF4),
                             rng.uniform(-1, 1, 5000).astype(f32), np.array([np.nan, 0.0, -0.0], dtype=f32)])
    dmid = ((ref.DYNAMIC_MAP[:-1] + ref.DYNAMIC_MAP[1:]) * f32(0.5)).astype(f32)
    dyn_in = np.concatenate([neighbours(dmid), neighbours(ref.DYNAMIC_MAP), rng.uniform(-1, 1, 5000).astype(f32),
                             (rng.uniform(-1, 1, 2000) * 10.0 ** rng.integers(-8, 0, 2000)).astype(f32),
                             np.array([np.nan, 0.0, -0.0, -1.0, 1.0], dtype=f32)])
    for flag, values, fn in (("--nf4-codes", nf4_in, ref.nf4_codes), ("--dynamic-codes", dyn_in, ref.dynamic_codes)):
        i, o = os.path.join(work, flag[2:] + ".f32"), os.path.join(work, flag[2:] + ".u8")
        values.tofile(i)
        subprocess.run([drv, flag, i, o], check=True)
        got, want = np.fromfile(o, dtype=np.uint8), fn(values)
        check(np.array_equal(got, want), f"{flag}: {int((got != want).sum())} of {values.size} differ")

    # Whole arrays: random sizes around the block boundaries and past 256 blocks.
    for n in (1, 2, 3, 63, 64, 65, 127, 128, 1000, 4133, 64 * 256, 64 * 256 + 1, 64 * 513 + 7):
        compare_case(drv, work, f"normal_{n}", rng.standard_normal(n) * 0.02)
    compare_case(drv, work, "blocksize_128", rng.standard_normal(3000), 128)
    compare_case(drv, work, "blocksize_32", rng.standard_normal(3001), 32)
    compare_case(drv, work, "blocksize_4096", rng.standard_normal(9000), 4096)
    compare_case(drv, work, "uniform_wide", rng.uniform(-1e3, 1e3, 20000))
    compare_case(drv, work, "heavy_tail", rng.standard_t(2, 40000) * 1e-3)

    # Adversarial.
    compare_case(drv, work, "zeros_1", np.zeros(1))
    compare_case(drv, work, "zeros_64", np.zeros(64))
    compare_case(drv, work, "zeros_1000", np.zeros(1000))
    compare_case(drv, work, "neg_zeros", -np.zeros(130))
    x = rng.standard_normal(64 * 300)
    x[64 * 5:64 * 9] = 0.0  # whole zero blocks among normal ones
    x[64 * 100 + 3] = 0.0
    compare_case(drv, work, "zero_blocks", x)
    x = rng.standard_normal(1000)
    x[77] = 1e30
    compare_case(drv, work, "one_huge", x)
    x = rng.standard_normal(64 * 260)
    x[64 * 7 + 1] = -3.0e38  # near FLT_MAX: absmax - offset stays finite
    compare_case(drv, work, "one_near_max", x)
    x = np.full(64 * 3, 0.5)
    compare_case(drv, work, "constant", x)
    x = rng.standard_normal(200)
    x[::64] = -np.abs(x).max() * 2  # each block's absmax is a negative element
    compare_case(drv, work, "negative_absmax", x)
    # Values exactly on the NF4 midpoints (absmax 1 keeps them exact after the scaling).
    mids = neighbours(ref.NF4_THRESHOLDS)
    blocks = []
    for k in range(0, mids.size, 63):
        blocks.append(np.concatenate([[1.0], mids[k:k + 63], np.zeros(63 - mids[k:k + 63].size)]))
    compare_case(drv, work, "nf4_midpoints", np.concatenate(blocks))
    # The same midpoints with absmax 2 (x * 0.5 exact) and odd total length.
    compare_case(drv, work, "nf4_midpoints_x2", np.concatenate(blocks)[:-1] * 2.0)
    # Denormals: a block of denormals alone (1/absmax overflows to inf), mixed with normals.
    den = (rng.uniform(-1, 1, 64) * 1e-40).astype(f32)
    compare_case(drv, work, "denormal_block", den)
    compare_case(drv, work, "denormal_small_absmax", np.concatenate([den * 1e-3, rng.standard_normal(128)]))
    compare_case(drv, work, "denormal_mixed",
                 np.concatenate([rng.standard_normal(64) * 1e-36, den, rng.standard_normal(65)]))
    # Block absmax values spread over many decades (the nested map's small codes).
    scales = 10.0 ** rng.uniform(-8, 2, 600)
    compare_case(drv, work, "absmax_decades", (rng.standard_normal((600, 64)) * scales[:, None]).reshape(-1))

    # Refused input: NaN and inf, naming the element index.
    for name, bad in (("nan", np.nan), ("inf", np.inf), ("neg_inf", -np.inf)):
        x = rng.standard_normal(100).astype(f32)
        x[70] = bad
        p, _ = run_driver(drv, work, "refuse_" + name, x, 64)
        check(p.returncode == 3 and "element 70" in p.stderr, f"refuse {name}: exit {p.returncode}, {p.stderr.strip()}")

    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("nf4: all cases bit-identical to the numpy reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
