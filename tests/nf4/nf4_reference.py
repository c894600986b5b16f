"""NF4 with double quantization in numpy, written from bitsandbytes' published algorithm.

Sources (bitsandbytes, MIT): functional.py (quantize_4bit with compress_statistics=True,
create_dynamic_map, quantize_blockwise), csrc/kernels.cu (kQuantizeBlockwise, dQuantizeNF4,
dQuantize, kDequantizeBlockwise). Everything is float32 as there; the formulation is
numpy's own (sorted thresholds and searchsorted for NF4, a vectorised binary search for the
8-bit map), so it checks model/nf4.cpp rather than restating it.

quantize(x, blocksize) -> dict(codes, absmax, absmax_codes, nested_scales, offset)
dequantize(q, n, blocksize) -> float32[n]
"""
from fractions import Fraction

import numpy as np

f32 = np.float32

# bitsandbytes' NF4 table (functional.py get_4bit_type("nf4")).
NF4_TEXT = (
    "-1.0", "-0.6961928009986877", "-0.5250730514526367", "-0.39491748809814453",
    "-0.28444138169288635", "-0.18477343022823334", "-0.09105003625154495", "0.0",
    "0.07958029955625534", "0.16093020141124725", "0.24611230194568634", "0.33791524171829224",
    "0.44070982933044434", "0.5626170039176941", "0.7229568362236023", "1.0")


def f32_literal(text):
    """A C/CUDA float literal: the decimal rounded to float32 once. np.float32(float(text)) rounds
    twice (to double, then float) and lands one ulp off for 4 of the 15 thresholds below."""
    exact = Fraction(text)
    t = f32(float(text))
    candidates = [np.nextafter(t, f32(-2)), t, np.nextafter(t, f32(2))]
    errors = [abs(Fraction(float(c)) - exact) for c in candidates]
    best = min(errors)
    ties = [c for c, e in zip(candidates, errors) if e == best]
    if len(ties) > 1:  # a tie goes to the even mantissa
        ties = [c for c in ties if int(np.array(c, dtype=f32).view(np.uint32)) % 2 == 0]
    return f32(ties[0])


# The decision points of dQuantizeNF4, its float literals, ascending: code k is taken when
# exactly k of them are below x (the kernel's tests are `x > t`, so x == t takes the lower).
NF4_THRESHOLDS = np.array([f32_literal(t) for t in (
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011")], dtype=f32)

NF4 = np.array([f32_literal(t) for t in NF4_TEXT], dtype=f32)


def nf4_codes(scaled):
    """NF4 codes of float32 values already multiplied by 1/absmax. NaN (an all-zero block:
    0 * inf) fails every `>` of the kernel's tree and lands on code 0."""
    scaled = np.asarray(scaled, dtype=f32)
    codes = np.searchsorted(NF4_THRESHOLDS, scaled, side="left").astype(np.uint8)
    codes[np.isnan(scaled)] = 0
    return codes


def _fma32(a, b, c):
    """float32 fused multiply-add: exact a*b+c rounded once (via fractions)."""
    return f32(float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))))


def torch_linspace(start, end, steps):
    """torch.linspace(start, end, steps) in float32 on the CPU (PyTorch's linspace_kernel, the
    AVX2 build): step = (end - start) / (steps - 1); index i is fma(step, i, start) in the
    first half and fma(-step, steps - 1 - i, end) in the second; while 16 or more remain, two
    8-lane vectors whose lane k is base + k * step with base that formula at the vector's start."""
    start, end = f32(start), f32(end)
    step = (end - start) / f32(steps - 1)
    half = steps // 2

    def at(i):
        return _fma32(step, f32(i), start) if i < half else _fma32(-step, f32(steps - i - 1), end)

    out = []
    i = 0
    while steps - i >= 16:
        for first in (i, i + 8):
            base = at(first)
            out += [f32(base + f32(f32(k) * step)) for k in range(8)]
        i += 16
    out += [at(j) for j in range(i, steps)]
    return np.array(out, dtype=f32)


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    """functional.create_dynamic_map, float32 as PyTorch evaluates it."""
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    assert additional_items == 0, "only the default map (no linear region) is reproduced"
    for i in range(max_exponent_bits):
        items = 2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed else \
            2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1
        b = torch_linspace(0.1, 1.0, int(items))
        means = (b[:-1] + b[1:]) / f32(2.0)
        scale = f32(10.0 ** (-(max_exponent_bits - 1) + i))
        data += list(scale * means)
        if signed:
            data += list(f32(-scale) * means)
    data += [f32(0.0), f32(1.0)]
    assert len(data) == 2 ** total_bits
    return np.sort(np.array(data, dtype=f32))


DYNAMIC_MAP = create_dynamic_map()


def dynamic_codes(scaled, code=DYNAMIC_MAP):
    """dQuantize<0> (csrc/kernels.cu) over an array: seven halvings from pivot 127, then the
    neighbour whose midpoint (a + b) * 0.5 is passed (strictly)."""
    x = np.asarray(scaled, dtype=f32)
    pivot = np.full(x.shape, 127, dtype=np.int64)
    lo_p = np.zeros(x.shape, dtype=np.int64)
    up_p = np.full(x.shape, 255, dtype=np.int64)
    lo = np.full(x.shape, -1.0, dtype=f32)
    up = np.full(x.shape, 1.0, dtype=f32)
    val = code[pivot]
    step = 64
    while step > 0:
        right = x > val
        lo_p = np.where(right, pivot, lo_p)
        lo = np.where(right, val, lo)
        up_p = np.where(right, up_p, pivot)
        up = np.where(right, up, val)
        pivot = np.where(right, pivot + step, pivot - step)
        val = code[pivot]
        step //= 2
    up = np.where(up_p == 255, code[255], up)
    lo = np.where(lo_p == 0, code[0], lo)
    above = x > val
    mid_up = (up + val) * f32(0.5)
    mid_lo = (lo + val) * f32(0.5)
    result = np.where(above, np.where(x > mid_up, up_p, pivot), np.where(x < mid_lo, lo_p, pivot))
    return result.astype(np.uint8)


def _blocks(x, blocksize):
    """x padded with zeros to whole blocks, as [blocks, blocksize] (the kernels load missing
    elements as 0, which changes no absmax)."""
    n = x.size
    nb = -(-n // blocksize)
    padded = np.zeros(nb * blocksize, dtype=f32)
    padded[:n] = x
    return padded.reshape(nb, blocksize)


def quantize(x, blocksize=64, nested_blocksize=256):
    x = np.ascontiguousarray(x, dtype=f32).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"non-finite value at element {bad[0]}")
    n = x.size
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        blocks = _blocks(x, blocksize)
        absmax = np.abs(blocks).max(axis=1).astype(f32)
        inv = f32(1.0) / absmax
        codes = nf4_codes(blocks * inv[:, None]).reshape(-1)
        if codes.size % 2:
            codes = np.append(codes, np.uint8(0))
        packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)[:(n + 1) // 2]

        # Double quantization: offset = absmax.mean(), summed in double in order here.
        offset = f32(np.cumsum(absmax.astype(np.float64))[-1] / absmax.size) if absmax.size else f32(0)
        centred = (absmax - offset).astype(f32)
        nested = _blocks(centred, nested_blocksize)
        nested_scales = np.abs(nested).max(axis=1).astype(f32)
        ninv = f32(1.0) / nested_scales
        absmax_codes = dynamic_codes(nested * ninv[:, None]).reshape(-1)[:absmax.size]
    return dict(codes=packed, absmax=absmax, absmax_codes=absmax_codes,
                nested_scales=nested_scales, offset=offset)


def dequantize(q, n, blocksize=64, nested_blocksize=256):
    nb = q["absmax_codes"].size
    scales = np.repeat(q["nested_scales"], nested_blocksize)[:nb]
    absmax = (DYNAMIC_MAP[q["absmax_codes"]] * scales).astype(f32) + q["offset"]
    codes = np.empty(q["codes"].size * 2, dtype=np.uint8)
    codes[0::2] = q["codes"] >> 4
    codes[1::2] = q["codes"] & 0x0F
    values = NF4[codes[:n]]
    return (values * np.repeat(absmax, blocksize)[:n]).astype(f32)
