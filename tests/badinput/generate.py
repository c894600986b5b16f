#!/usr/bin/env python3
"""Bad-input cases for lora_dist (issue 8, point 2): writes them into a work folder.

    generate.py --work DIR [--seed N] --fixture-bin build/lora_dist

Deterministic for a seed. First it makes good fixtures in DIR/fixtures (a tiny run.yaml,
token shards, an HDF5 base-weights file written with h5py, and the checkpoints and
adapter.h5 of a 3-step run of --fixture-bin, so checkpoints carry whatever seal the binary
under test writes), then damages copies of them, one folder per case under DIR/cases, and
writes DIR/cases.json: a list of records

    {"cls": "yaml|shard|base|hf|checkpoint|adapter|cli", "name": ..., "argv": [...], "env": {...},
     "expect": "reject|accept|accept_or_reject", "rc": [allowed non-zero statuses],
     "names": [substrings the output must contain], "perturb": bool, "why": "..."}

argv uses "{bin}" for the binary under test. `reject`: exit status in `rc`, output holding
"lora_dist:" and every `names` entry (the file, key or tensor given). `accept`: exit 0 (and
`names`, e.g. the warning naming a skipped checkpoint). `accept_or_reject`: either, as
long as a refusal is one of `rc` and says what it refuses. `perturb`: heap-sensitive, so
run_suite.py also runs it on the Release binary with MALLOC_PERTURB_.

The cases come from the classes the fault campaign found, not from particular byte
offsets: bit flips at offsets spread over whole files (one per stratum, random inside
it), truncations at lengths spread over the file, values out of range, non-finite
tensors, huge declared shapes, type confusions, and command lines. Where a damaged file
may still be valid (a flip inside the token data, inside a float of the base weights)
the expectation comes from an independent reader: the token-shard format re-implemented
here from io/token_shard.h, and h5py (in a child process, since libhdf5 itself may crash
on corrupted metadata) for HDF5 files.
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys

import numpy as np

class Raw(str):
    """Written into the YAML as is (a flow list, .nan, 1.0e30); other strings are quoted."""


# The tiny model every case uses: ~1 s a run in Release, a few under ASan.
MODEL = {"n_layer": 1, "n_head": 2, "d_model": 16, "vocab_size": 64, "context": 16}
VOCAB = MODEL["vocab_size"]
SEQ = 8
BASE_CFG = {
    "model": dict(MODEL),
    "lora": {"r": 2, "alpha": 4, "targets": Raw("[q, v]")},
    "train": {"steps": 3, "batch_size": 2, "micro_batch": 1, "seq_len": SEQ, "log_every": 1, "seed": 5,
              "threads": 1},
    "checkpoint": {"every": 1, "keep_last": 5},
}
MPI = ["mpirun", "-np", "2", "--oversubscribe", "--allow-run-as-root"]


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def yaml_text(cfg):
    out = []
    for section, keys in cfg.items():
        out.append(f"{section}:")
        for k, v in keys.items():
            out.append(f"  {k}: {yaml_scalar(v)}")
    return "\n".join(out) + "\n"


def merged(overrides):
    cfg = {s: dict(k) for s, k in BASE_CFG.items()}
    for s, keys in (overrides or {}).items():
        if keys is None:
            cfg.pop(s, None)
            continue
        cfg.setdefault(s, {})
        for k, v in keys.items():
            if v is None:
                cfg[s].pop(k, None)
            else:
                cfg[s][k] = v
    return cfg


# --- token shards (io/token_shard.h) ------------------------------------------------------

def shard_bytes(tokens, vocab, token_bytes=2, mask=None, version=1, flags=None, n_tokens=None, magic=b"LDTOKENS"):
    flags = (1 if mask is not None else 0) if flags is None else flags
    n = len(tokens) if n_tokens is None else n_tokens
    head = magic + struct.pack("<IIIIQ", version, token_bytes, vocab, flags, n & 0xFFFFFFFFFFFFFFFF)
    head += b"\0" * (64 - len(head))
    dt = {2: "<u2", 4: "<u4"}.get(token_bytes, "<u2")
    body = np.asarray(tokens, dtype=np.uint64).astype(dt).tobytes()
    if mask is not None:
        body += bytes(mask)
    return head + body


def shard_verdict(data, model_vocab):
    """What a correct lora_dist must do with this shard as data.train: 'reject' (the
    documented format is violated, or a token does not fit the model), 'accept', or
    'either' (valid, but a stricter reader may refuse it: non-zero padding, a header
    vocab_size above the model's)."""
    if len(data) < 64 or data[:8] != b"LDTOKENS":
        return "reject"
    version, tb, vocab, flags, n = struct.unpack("<IIIIQ", data[8:32])
    if version != 1 or tb not in (2, 4) or flags & ~1 or n < 2:
        return "reject"
    per = tb + (flags & 1)
    if len(data) - 64 != n * per:
        return "reject"
    toks = np.frombuffer(data[64:64 + n * tb], dtype="<u2" if tb == 2 else "<u4")
    if int(toks.max()) >= vocab or int(toks.max()) >= model_vocab:
        return "reject"
    if flags & 1:
        mask = np.frombuffer(data[64 + n * tb:], dtype=np.uint8)
        if int(mask.max()) > 1:
            return "reject"
        if int(mask[1:].max(initial=0)) == 0:
            return "either"  # nothing to score: refusing it or stopping on it are both fine
    if n < SEQ + 1:
        return "reject"
    if any(data[32:64]) or vocab > model_vocab:
        return "either"
    return "accept"


# --- HDF5 base weights (io/base_weights.h, model/param_layout.cpp) ------------------------

def base_tensors(rng, m=MODEL):
    d, v, c = m["d_model"], m["vocab_size"], m["context"]
    t = {"wte": (v, d), "wpe": (c, d)}
    for l in range(m["n_layer"]):
        h = f"h.{l}."
        t.update({h + "ln_1.weight": (1, d), h + "ln_1.bias": (1, d), h + "attn.qkv.weight": (3 * d, d),
                  h + "attn.qkv.bias": (3 * d, 1), h + "attn.proj.weight": (d, d), h + "attn.proj.bias": (1, d),
                  h + "ln_2.weight": (1, d), h + "ln_2.bias": (1, d), h + "mlp.fc.weight": (4 * d, d),
                  h + "mlp.fc.bias": (4 * d, 1), h + "mlp.proj.weight": (d, 4 * d), h + "mlp.proj.bias": (1, d)})
    t.update({"ln_f.weight": (1, d), "ln_f.bias": (1, d)})
    out = {}
    for name, shape in t.items():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            out[name] = np.ones(shape, np.float32)
        else:
            out[name] = (rng.standard_normal(shape) * 0.02).astype(np.float32)
    return out


# --- HF safetensors folders (io/safetensors_file.h, io/hf_base_weights.h) ----------------

def hf_tensors(base):
    """The base tensors under their HF GPT-2 names: Conv1D weights [in, out], vectors [n]."""
    conv = {"attn.qkv.": "attn.c_attn.", "attn.proj.": "attn.c_proj.", "mlp.fc.": "mlp.c_fc.", "mlp.proj.": "mlp.c_proj."}
    out = {}
    for name, v in base.items():
        hf, transposed = name, False
        for ours, theirs in conv.items():
            if ours in name:
                hf, transposed = name.replace(ours, theirs), name.endswith("weight")
        if name in ("wte", "wpe"):
            hf = name + ".weight"
        out[hf] = v.T.copy() if transposed else (v.reshape(-1).copy() if 1 in v.shape else v.copy())
    return out


def safetensors_bytes(tensors, edit=None, dtype="F32"):
    """The file as the format says; `edit(header)` may damage the header dict first."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f4" if dtype == "F32" else "<f2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if edit:
        edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def hf_config(m=MODEL):
    return {"model_type": "gpt2", "n_layer": m["n_layer"], "n_head": m["n_head"], "n_embd": m["d_model"],
            "vocab_size": m["vocab_size"], "n_positions": m["context"], "layer_norm_epsilon": 1e-5}


def llama_config(m=MODEL, **changes):
    """A Llama-family config.json of MODEL's size (grouped-query: 2 heads on 1 KV head)."""
    c = {"model_type": "llama", "num_hidden_layers": m["n_layer"], "hidden_size": m["d_model"],
         "num_attention_heads": m["n_head"], "num_key_value_heads": 1, "intermediate_size": 40,
         "vocab_size": m["vocab_size"], "max_position_embeddings": m["context"], "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False}
    c.update(changes)
    return {k: v for k, v in c.items() if v is not None}


def st_verdict(data, tensors_needed, model_shapes):
    """What a correct reader must do with this model.safetensors: 'reject' when the format
    is violated or a needed tensor is missing, mis-shaped or not a float; 'either' when it
    is valid (a flipped float may be a NaN, which must be refused, or a finite value)."""
    if len(data) < 8:
        return "reject"
    n = struct.unpack("<Q", data[:8])[0]
    if n > len(data) - 8:
        return "reject"
    try:
        pairs = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=lambda p: p)
    except (ValueError, UnicodeDecodeError):
        return "reject"
    if not isinstance(pairs, list) or len({k for k, _ in pairs}) != len(pairs):
        return "reject"
    size = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
            "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
    spans, entries = [], {}
    for k, v in pairs:
        if k == "__metadata__":
            continue
        v = dict(v) if isinstance(v, list) else None
        if not v or not {"dtype", "shape", "data_offsets"} <= set(v) or v["dtype"] not in size:
            return "reject"
        sh, off = v["shape"], v["data_offsets"]
        if not isinstance(sh, list) or any(type(x) is not int or x < 0 for x in sh):
            return "reject"
        if not isinstance(off, list) or len(off) != 2 or any(type(x) is not int or x < 0 for x in off):
            return "reject"
        if off[0] > off[1] or off[1] > len(data) - 8 - n or int(np.prod(sh, dtype=object)) * size[v["dtype"]] != off[1] - off[0]:
            return "reject"
        if off[1] > off[0]:
            spans.append(tuple(off))
        entries[k] = v
    spans.sort()
    if any(b[0] < a[1] for a, b in zip(spans, spans[1:])):
        return "reject"
    for k in tensors_needed:
        e = entries.get(k)
        if not e or e["dtype"] not in ("F32", "F16", "BF16") or e["shape"] != list(model_shapes[k]):
            return "reject"
    if any(k.startswith("h.") and int(k.split(".")[1]) >= MODEL["n_layer"] for k in entries if k.split(".")[1].isdigit()):
        return "reject"
    return "either"


def write_h5(path, tensors, dtype=None, **kw):
    import h5py
    with h5py.File(path, "w") as f:
        for name, a in tensors.items():
            f.create_dataset(name, data=a if dtype is None else a.astype(dtype), **kw)


H5_PROBE = r"""
import sys, numpy as np, h5py
path, names = sys.argv[1], sys.argv[2:]
try:
    f = h5py.File(path, "r")
    for n in names:
        a = f[n][()]
        if a.dtype.kind != "f" or not np.all(np.isfinite(a.astype(np.float64))):
            print("nonfinite-or-type", n); sys.exit(0)
        if np.any(np.abs(a.astype(np.float64)) > 3.4e38):
            print("range", n); sys.exit(0)
    for g in names and [] or []:
        pass
    print("ok")
except Exception as e:
    print("error", type(e).__name__)
"""


def h5_probe(path, names):
    """Reads every named dataset with h5py in a child process: 'ok' (readable, finite
    floats), 'bad' (an error or a non-finite / non-float value), or 'crash' (libhdf5 died)."""
    try:
        p = subprocess.run([sys.executable, "-c", H5_PROBE, path] + list(names), capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        return "crash"
    if p.returncode != 0:
        return "crash"
    return "ok" if p.stdout.strip() == "ok" else "bad"


def checkpoint_names(path):
    import h5py
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        return names


# --- damage ------------------------------------------------------------------------------

# The seal of io/file_seal.h, re-implemented from its documented layout and Hash64
# (io/checkpoint_hash.h): what a tool that edits a checkpoint and reseals it would write, so
# that cases reach the contents checks behind the seal.
SEAL_BYTES, MASK64 = 512, (1 << 64) - 1


def hash64(data):
    def step(h, w):
        w = (w * 0x87c37b91114253d5) & MASK64
        w = ((w << 31) | (w >> 33)) & MASK64
        w = (w * 0x4cf5ad432745937f) & MASK64
        h ^= w
        h = ((h << 27) | (h >> 37)) & MASK64
        return (h * 5 + 0x52dce729) & MASK64
    h, whole = 0x9e3779b97f4a7c15, len(data) // 8
    for w in struct.unpack(f"<{whole}Q", data[:8 * whole]):
        h = step(h, w)
    if len(data) % 8:
        h = step(h, int.from_bytes(data[8 * whole:].ljust(8, b"\0"), "little"))
    h ^= len(data)
    for mul in (0xff51afd7ed558ccd, 0xc4ceb9fe1a85ec53):
        h ^= h >> 33
        h = (h * mul) & MASK64
    return h ^ (h >> 33)


def reseal(path):
    """Seals `path` anew: its user block is overwritten, as the writer leaves it zeroed before sealing."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    block = bytearray(SEAL_BYTES)
    block[0:8] = b"LDCKSUM1"
    block[8:24] = struct.pack("<IIQ", 1, SEAL_BYTES, len(data))
    block[24:32] = struct.pack("<Q", hash64(bytes(data[SEAL_BYTES:])))
    block[32:40] = struct.pack("<Q", hash64(bytes(block)))  # over the block with this field zero
    data[:SEAL_BYTES] = block
    write(path, bytes(data))


def then_resealed(writer):
    """A case writer that runs `writer` (an edit through h5py), then reseals the file."""
    def w(p):
        writer(p)
        reseal(p)
    return w


def spread_offsets(rng, size, n, lo=0):
    """n offsets in [lo, size), one in each of n equal strata, random within it."""
    span = (size - lo) / n
    return sorted({lo + min(size - lo - 1, int(i * span + rng.random() * span)) for i in range(n)})


def flip(data, offset, bit):
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


def write(path, data, mode="wb"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)
    return path


class Gen:
    def __init__(self, work, seed, fixture_bin):
        self.work = os.path.abspath(work)
        self.rng = random.Random(seed)
        self.nrng = np.random.default_rng(seed)
        self.fixture_bin = fixture_bin
        self.cases = []
        self.fx = os.path.join(self.work, "fixtures")

    # -- helpers
    def dir(self, cls, name):
        d = os.path.join(self.work, "cases", cls, name)
        os.makedirs(d, exist_ok=True)
        return d

    def yaml(self, d, overrides=None, name="run.yaml", text=None):
        cfg = merged(overrides)
        cfg.setdefault("data", {}).setdefault("train", self.train)
        cfg.setdefault("output", {}).setdefault("dir", os.path.join(d, "out"))
        return write(os.path.join(d, name), (text if text is not None else yaml_text(cfg)).encode())

    def add(self, cls, name, argv, expect, rc=(), names=(), env=None, perturb=False, why="", timeout=None,
            accept_names=()):
        assert expect in ("reject", "accept", "accept_or_reject")
        assert expect == "accept" or rc, name
        rec = {"cls": cls, "name": name, "argv": argv, "env": env or {}, "expect": expect, "rc": sorted(rc),
               "names": list(names), "accept_names": list(accept_names), "perturb": perturb, "why": why}
        if timeout:
            rec["timeout"] = timeout
        self.cases.append(rec)

    def run_cfg(self, cls, name, overrides=None, expect="reject", rc=(2,), names=(), mpi=False, perturb=False,
                why="", text=None, extra=(), accept_names=()):
        d = self.dir(cls, name)
        y = self.yaml(d, overrides, text=text)
        argv = (MPI if mpi else []) + ["{bin}", "--yaml", y] + list(extra)
        self.add(cls, name, argv, expect, rc, names, perturb=perturb, why=why, accept_names=accept_names)
        return d

    # -- fixtures
    def fixtures(self):
        os.makedirs(self.fx, exist_ok=True)
        r = self.nrng
        n = 4000
        toks = r.integers(0, VOCAB, n)
        mask = (r.random(n) < 0.6).astype(np.uint8)
        self.train_bytes = shard_bytes(toks, VOCAB, 2, mask)
        self.train = write(os.path.join(self.fx, "train.bin"), self.train_bytes)
        self.val_bytes = shard_bytes(r.integers(0, VOCAB, 600), VOCAB, 4)
        self.val = write(os.path.join(self.fx, "val.bin"), self.val_bytes)
        self.base_t = base_tensors(r)
        self.base = os.path.join(self.fx, "base.h5")
        write_h5(self.base, self.base_t)
        with open(self.base, "rb") as f:
            self.base_bytes = f.read()
        # A real run makes the checkpoints and the adapter, with the binary under test's format.
        run = os.path.join(self.fx, "run")
        y = self.yaml(self.fx, {"output": {"dir": run}}, name="fixture_run.yaml")
        p = subprocess.run([self.fixture_bin, "--yaml", y], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
        if p.returncode != 0:
            sys.exit(f"generate.py: the fixture run failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
        self.ckpt = {s: os.path.join(run, "checkpoints", f"step_{s:08d}.h5") for s in (1, 2, 3)}
        self.adapter = os.path.join(run, "adapter.h5")
        for path in list(self.ckpt.values()) + [self.adapter]:
            if not os.path.exists(path):
                sys.exit(f"generate.py: the fixture run did not write {path}")

    # -- class: HF safetensors folders (model.init: hf) -----------------------------------
    def hf_case(self, name, why, st=None, config=None, expect="reject", rc=(3,), names=None, mpi=False, over=None,
                index=None, extra_files=None):
        d = self.dir("hf", name)
        folder = os.path.join(d, "gpt2")
        os.makedirs(folder, exist_ok=True)
        write(os.path.join(folder, "config.json"), json.dumps(config or hf_config()).encode())
        if st is not None:
            write(os.path.join(folder, "model.safetensors"), st)
        if index is not None:
            write(os.path.join(folder, "model.safetensors.index.json"), json.dumps(index).encode())
        for fname, data in (extra_files or {}).items():
            write(os.path.join(folder, fname), data)
        o = {"model": {"init": "hf", "path": folder}}
        for sec, kv in (over or {}).items():
            o.setdefault(sec, {}).update(kv)
        if mpi:
            o.setdefault("parallel", {}).update({"tp": 2, "dp": 1})
        self.run_cfg("hf", name, o, expect, set(rc), names if names is not None else ["model.safetensors"], mpi=mpi,
                     perturb=True, why=why)

    def hf_cases(self):
        T = hf_tensors(self.base_t)
        good = safetensors_bytes(T)
        needed = {k: v.shape for k, v in T.items()}
        victim = "h.0.attn.c_proj.weight"
        self.hf_case("good", "a good GPT-2 folder", st=good, expect="accept", names=[])
        self.hf_case("good_f16", "F16 tensors, converted", st=safetensors_bytes(T, dtype="F16"), expect="accept",
                     names=[])
        for i, n in enumerate([0, 7, 8, 100] + spread_offsets(self.rng, len(good), 6, lo=120)):
            self.hf_case(f"truncated_{i:02d}_to_{n}", "model.safetensors cut short", st=good[:n])
        hlen = struct.unpack("<Q", good[:8])[0]
        for i, off in enumerate(spread_offsets(self.rng, 8 + hlen, 14) + spread_offsets(self.rng, len(good), 4, lo=8 + hlen)):
            data = flip(good, off, self.rng.randrange(8))
            v = st_verdict(data, needed, needed)
            self.hf_case(f"flip_{i:02d}_at_{off}", f"random bit flip (verdict: {v})", st=data,
                         expect="reject" if v == "reject" else "accept_or_reject")

        def edited(f):
            return safetensors_bytes(T, edit=f)

        def setk(key, value):
            return lambda h: h[victim].__setitem__(key, value)

        for name, edit, why, extra in (
                ("header_len_beyond_file", None, "header length 2^40", ["header length"]),
                ("unknown_dtype", setk("dtype", "F24"), "dtype F24", [victim]),
                ("int_dtype", setk("dtype", "I32"), "dtype I32 (valid safetensors, not a weight)", [victim]),
                ("shape_times_dtype", setk("shape", [16, 17]), "shape x dtype != byte length", [victim]),
                ("huge_shape", setk("shape", [2 ** 40, 2 ** 40]), "shape product past 2^64", [victim]),
                ("negative_offset", setk("data_offsets", [-4, 1020]), "a negative offset", [victim]),
                ("offsets_out_of_range", setk("data_offsets", [2 ** 50, 2 ** 50 + 1024]), "offsets past the data",
                 [victim]),
                ("offsets_2_64", setk("data_offsets", [2 ** 64 - 1024, 2 ** 64]), "offsets beyond uint64", [victim]),
                ("overlap", lambda h: h[victim].__setitem__("data_offsets", h["h.0.attn.c_attn.bias"]["data_offsets"][:1] +
                                                            [h["h.0.attn.c_attn.bias"]["data_offsets"][0] + 1024]),
                 "offsets overlapping another tensor", [victim]),
                ("shape_disagrees_with_config", setk("shape", [8, 32]), "[8, 32] where config.json gives [16, 16]",
                 [victim, "config.json"]),
                ("missing_tensor", lambda h: h.pop("h.0.ln_2.bias"), "a tensor missing", ["h.0.ln_2.bias"]),
                ("entry_not_object", lambda h: h.__setitem__(victim, [1, 2]), "an entry that is a list", [victim]),
        ):
            if name == "header_len_beyond_file":
                st = struct.pack("<Q", 2 ** 40) + good[8:]
            else:
                st = edited(edit)
            self.hf_case(name, why, st=st, names=["model.safetensors"] + extra)
        self.hf_case("header_not_json", "header bytes that are not JSON",
                     st=struct.pack("<Q", 16) + b'{"wte.weight": [' + good[24:])
        self.hf_case("header_nesting_bomb", "a header of 100000 nested lists",
                     st=(lambda t: struct.pack("<Q", len(t)) + t)(b"[" * 100000 + b"]" * 100000))
        nan = {k: v.copy() for k, v in T.items()}
        nan["h.0.mlp.c_fc.weight"][3, 40] = np.nan
        self.hf_case("nan_tp2", "NaN in a column-sharded Conv1D weight at tp 2: every rank exit 3",
                     st=safetensors_bytes(nan), names=["model.safetensors", "h.0.mlp.c_fc.weight"], mpi=True)
        bad_cfg = dict(hf_config(), n_layer=2)
        self.hf_case("yaml_disagrees_with_config", "config.json n_layer 2, the YAML's model.n_layer 1: exit 2",
                     st=good, config=bad_cfg, rc=(2,), names=["model.n_layer", "config.json"])
        self.hf_case("config_not_json", "config.json cut short", st=good, rc=(3,), names=["config.json"],
                     extra_files={"config.json": b'{"n_layer": '})
        # Llama-family config.json (io/hf_config.h): each refusal exit 3 naming the file and the key.
        for name, cfg, why, keys in (
                ("llama_missing_key", llama_config(intermediate_size=None), "no intermediate_size", ["intermediate_size"]),
                ("llama_gqa_not_dividing", llama_config(num_key_value_heads=3), "2 heads on 3 KV heads",
                 ["num_key_value_heads"]),
                ("llama_odd_head_dim", llama_config(head_dim=7), "an odd head_dim (RoPE rotates pairs)", ["head_dim"]),
                ("llama_yarn", llama_config(rope_scaling={"rope_type": "yarn", "factor": 4.0}), "yarn RoPE scaling",
                 ["rope_scaling", "yarn"]),
                ("llama3_scaling_incomplete", llama_config(rope_scaling={"rope_type": "llama3", "factor": 8.0}),
                 "llama3 scaling without its frequency factors", ["rope_scaling", "low_freq_factor"]),
                ("llama_gelu", llama_config(hidden_act="gelu"), "an activation other than silu", ["hidden_act"]),
                ("qwen3", llama_config(model_type="qwen3"), "Qwen3 (per-head q/k norms not built)", ["qwen3"]),
                ("unknown_model_type", llama_config(model_type="falcon"), "a model_type lora_dist does not build",
                 ["model_type", "falcon"])):
            self.hf_case(name, why, st=good, config=cfg, rc=(3,), names=["config.json"] + keys)
        self.hf_case("llama_tp_over_kv_heads", "1 KV head at tp 2: exit 2 naming parallel.tp and the largest tp",
                     st=good, config=llama_config(), rc=(2,), names=["parallel.tp", "n_kv_head", "largest tp"],
                     over={"parallel": {"tp": 2, "dp": 1}})
        self.hf_case("index_escapes_folder", "the index names ../model.safetensors", names=["index.json"],
                     index={"weight_map": {k: "../model.safetensors" for k in T}})
        # lora_dist prepare: JSONL and tokenizer files from anywhere (trainer/prepare/prepare.h).
        tok = os.path.join(self.fx, "gpt2_tokenizer")
        if not os.path.isdir(tok):
            os.makedirs(tok)
            data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "gpt2_bpe")
            shutil.copy(os.path.join(data, "encoder.json"), os.path.join(tok, "vocab.json"))
            shutil.copy(os.path.join(data, "vocab.bpe"), os.path.join(tok, "merges.txt"))
        for name, text, expect, rc, names, why in (
                ("prepare_good", b'{"prompt": "a", "completion": " b"}\n{"prompt": "c", "completion": " d"}\n',
                 "accept", (), [], "two good examples"),
                ("prepare_bad_json_line", b'{"prompt": "a", "completion": " b"}\n{"prompt": "a", "completion": \n',
                 "reject", (3,), ["x.jsonl:2"], "line 2 is cut short"),
                ("prepare_not_utf8", b'{"prompt": "caf\xe9", "completion": " b"}\n', "reject", (3,), ["x.jsonl:1"],
                 "latin-1 bytes in a JSON string"),
                ("prepare_nul_bytes", b"\0" * 64, "reject", (3,), ["x.jsonl:1"], "NUL bytes"),
                ("prepare_empty", b"", "reject", (3,), ["x.jsonl"], "an empty file")):
            d = self.dir("hf", name)
            src = write(os.path.join(d, "x.jsonl"), text)
            self.add("hf", name, ["{bin}", "prepare", "--tokenizer", tok, "--input", src, "--out",
                                  os.path.join(d, "train.bin")], expect, rc, names, why=why)
        bad_tok = os.path.join(self.dir("hf", "prepare_bad_merges"), "tok")
        os.makedirs(bad_tok, exist_ok=True)
        shutil.copy(os.path.join(tok, "vocab.json"), bad_tok)
        with open(os.path.join(tok, "merges.txt"), "rb") as f:
            merges = f.read()
        cut = merges.index(b"\n", 5000) + 1  # between two lines
        write(os.path.join(bad_tok, "merges.txt"), merges[:cut] + "Ġt he re\n".encode() + merges[cut:])
        src = write(os.path.join(bad_tok, "..", "x.jsonl"), b'{"prompt": "a", "completion": " b"}\n')
        self.add("hf", "prepare_bad_merges", ["{bin}", "prepare", "--tokenizer", bad_tok, "--input", src, "--out",
                                              os.path.join(bad_tok, "..", "train.bin")], "reject", (3,),
                 ["merges.txt:"], why="a merges.txt line of three symbols")
        self.hf_case("index_missing_shard", "the index names a shard that is not there", names=["index.json", "b.safetensors"],
                     index={"weight_map": {k: "b.safetensors" for k in T}})

    # -- class 1: YAML --------------------------------------------------------------------
    def yaml_cases(self):
        good = yaml_text(merged({"data": {"train": self.train}, "output": {"dir": "out"}})).encode()
        C = "yaml"
        for i, off in enumerate(spread_offsets(self.rng, len(good), 12)):
            d = self.dir(C, f"flip_{i:02d}_at_{off}")
            y = write(os.path.join(d, "run.yaml"), flip(good, off, self.rng.randrange(8)))
            self.add(C, os.path.basename(d), ["{bin}", "--yaml", y], "accept_or_reject", {2, 3}, ["run.yaml"],
                     why="random bit flip in a good run.yaml: train or refuse, never crash")
        for i, n in enumerate(spread_offsets(self.rng, len(good), 8)):
            d = self.dir(C, f"truncated_{i:02d}_to_{n}")
            y = write(os.path.join(d, "run.yaml"), good[:n])
            self.add(C, os.path.basename(d), ["{bin}", "--yaml", y], "accept_or_reject", {2}, ["run.yaml"],
                     why="run.yaml cut short")

        def text_case(name, text, rc=(2,), names=("run.yaml",), expect="reject", why=""):
            d = self.dir(C, name)
            y = write(os.path.join(d, "run.yaml"), text if isinstance(text, bytes) else text.encode())
            self.add(C, name, ["{bin}", "--yaml", y], expect, set(rc), names, why=why)

        body = good.decode()
        text_case("nested_flow_100k", "model: " + "[" * 100000 + "]" * 100000 + "\n" + body,
                  why="YAML nested 100000 deep (flow): a stack overflow in a recursive parser")
        text_case("nested_block_3000", "".join("  " * i + f"k{i}:\n" for i in range(3000)) + body,
                  why="YAML mappings nested 3000 deep (block)")
        text_case("nested_map_in_key", "model: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n" + body,
                  why="YAML mappings nested 20000 deep inside model")
        text_case("leading_comma", ",a\n" + body, why="a stray ',' before the first key (yaml-cpp's LoadAll "
                  "loops forever on it, allocating, found by fuzz_config)")
        text_case("second_document", body + "---\n" + body, why="a second YAML document after the config")
        text_case("second_document_empty", body + "---\n", why="a second, empty YAML document")
        text_case("empty_file", "", names=("run.yaml", "data.train"), why="empty run.yaml: data.train is required")
        text_case("nul_bytes", body.encode()[:40] + b"\0\0\0" + body.encode()[40:], why="NUL bytes inside run.yaml")
        text_case("invalid_utf8", body.replace("model:", "mod\xe9l:", 1).encode("latin-1"),
                  why="a key in latin-1, not UTF-8")
        text_case("tab_indent", body.replace("  n_layer", "\tn_layer"), why="tab indentation")
        bomb = ("[&a0 [x, x, x, x, x, x, x, x, x], " +
                ", ".join(f"&a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]" for i in range(1, 8)) + "]")
        text_case("alias_bomb_top_level", "bomb: " + bomb + "\n" + body, names=("run.yaml", "bomb"),
                  why="billion-laughs aliases (9^8 nodes) under an unknown key: refused without expanding them")
        text_case("alias_bomb_in_value", body.replace("  steps: 3", "  steps: " + bomb),
                  names=("run.yaml", "train.steps"),
                  why="train.steps is a list aliasing 9^8 nodes: the '(got ...)' part must not print them all")
        text_case("merge_key", body.replace("lora:\n", "lora:\n  <<: {r: 3}\n", 1), expect="accept_or_reject",
                  why="YAML merge key << inside a section")
        text_case("binary_tag", body.replace("  r: 2", "  r: !!binary AAAA"), names=("run.yaml", "lora.r"),
                  why="a !!binary value for an integer key")
        text_case("complex_key", body.replace("lora:\n", "lora:\n  ? [a, b]\n  : 1\n", 1),
                  why="a sequence used as a mapping key")
        text_case("section_is_list", body.replace("train:\n", "train: [1, 2]\ntrain_:\n", 1),
                  why="a section that is a list")
        text_case("long_value_200k", body.replace("  r: 2", "  r: " + "9" * 200_000),
                  names=("run.yaml", "lora.r"), why="a 200 kB integer literal")
        text_case("file_2mb", body + "# " + "x" * 2_000_000 + "\n", names=("run.yaml",),
                  expect="accept_or_reject", why="a 2 MB run.yaml (one long comment)")
        text_case("bom_utf8", b"\xef\xbb\xbf" + good, expect="accept_or_reject", why="UTF-8 byte-order mark")

        def val_case(name, section, key, value, rc=(2,), expect="reject", names=None, why="", extra_over=None):
            over = {section: {key: value}}
            for s, kv in (extra_over or {}).items():
                over.setdefault(s, {}).update(kv)
            self.run_cfg(C, name, over, expect, set(rc),
                         names if names is not None else ["run.yaml", f"{section}.{key}"], why=why)

        I32 = 2 ** 31
        val_case("d_model_int_max", "model", "d_model", I32 - 1, why="d_model at INT_MAX: overflows d*d and 4*d")
        val_case("d_model_2pow30", "model", "d_model", 2 ** 30, extra_over={"model": {"n_head": 1}},
                 names=["run.yaml", "d_model"], why="d_model 2^30: 3*d and 4*d overflow int32")
        val_case("d_model_int_overflow", "model", "d_model", I32, why="d_model beyond int32")
        val_case("vocab_int_max", "model", "vocab_size", I32 - 1, names=["run.yaml", "vocab_size"],
                 why="vocab_size INT_MAX: V*d overflows, padding to tp overflows")
        val_case("n_layer_huge", "model", "n_layer", 10 ** 8, names=["run.yaml", "n_layer"],
                 why="10^8 layers: ~1.3 TB, more memory than the machine")
        val_case("context_huge", "model", "context", I32 - 1, names=["run.yaml", "context"],
                 why="context INT_MAX: position table overflow")
        val_case("micro_times_seq_overflow", "train", "micro_batch", 65536,
                 extra_over={"train": {"seq_len": 65536, "batch_size": 65536}, "model": {"context": 65536}},
                 names=["run.yaml"], why="micro_batch x seq_len = 2^32 overflows int32")
        val_case("gpt3_175b_shape", "model", "d_model", 12288,
                 extra_over={"model": {"n_layer": 96, "n_head": 96, "vocab_size": 50257, "context": 2048}},
                 names=["run.yaml", "model", "iB"], why="GPT-3 175B: needs far more memory than the machine -> exit 2 "
                                                  "naming the keys and the bytes (KiB/MiB/GiB/TiB)")
        val_case("activation_memory", "train", "micro_batch", 4096,
                 extra_over={"train": {"seq_len": 4096, "batch_size": 4096}, "model": {"context": 4096}},
                 names=["run.yaml", "iB"], why="activations of 4096 x 4096 tokens exceed memory")
        val_case("steps_1e12", "train", "steps", 10 ** 12, why="train.steps beyond int32")
        val_case("init_seed_2pow64", "model", "init_seed", 2 ** 64, why="init_seed beyond uint64")
        val_case("lr_nan", "optim", "lr", Raw(".nan"), why="NaN learning rate")
        val_case("lr_inf", "optim", "lr", Raw(".inf"), why="infinite learning rate")
        val_case("alpha_nan", "lora", "alpha", Raw(".nan"), why="NaN alpha")
        val_case("alpha_1e39", "lora", "alpha", Raw("1.0e39"), why="alpha overflows float32")
        val_case("init_std_inf", "model", "init_std", Raw(".inf"), why="infinite init_std")
        val_case("every_minutes_nan", "checkpoint", "every_minutes", Raw(".nan"), why="NaN every_minutes")
        val_case("ln_eps_nan", "model", "ln_eps", Raw(".nan"), why="NaN LayerNorm epsilon")
        val_case("init_std_1e30", "model", "init_std", Raw("1.0e30"), rc=(2, 4), names=[],
                 why="extreme init: refused, or training stops on the non-finite loss (exit 4)")
        val_case("lr_1e30", "optim", "lr", Raw("1.0e30"), rc=(2, 4), expect="accept_or_reject", names=[],
                 extra_over={"train": {"steps": 6}, "optim": {"grad_clip": 0}},
                 why="a learning rate that blows up the weights: a non-finite loss stops training (exit 4)")
        val_case("lr_1e30_skip", "optim", "lr", Raw("1.0e30"), rc=(2, 4), expect="accept_or_reject",
                 names=[], extra_over={"train": {"steps": 6, "on_nonfinite": "skip"}, "optim": {"grad_clip": 0}},
                 why="train.on_nonfinite: skip with a learning rate that blows up: skip the bad steps or stop")
        val_case("on_nonfinite_bogus", "train", "on_nonfinite", "sometimes", why="train.on_nonfinite: stop|skip only")
        d = self.dir(C, "metrics_unopenable")
        write(os.path.join(d, "out", "blocker"), b"a regular file where a folder should be")
        y = self.yaml(d, {"output": {"dir": os.path.join(d, "out"), "metrics": "blocker/m.jsonl"}})
        self.add(C, "metrics_unopenable", ["{bin}", "--yaml", y], "reject", {1, 2, 3}, ["m.jsonl", "Not a directory"],
                 why="the metrics file cannot be opened (its folder is a file): the message gives the file and "
                     "the OS reason")
        d = self.dir(C, "output_dir_is_file")
        write(os.path.join(d, "afile"), b"x")
        y = self.yaml(d, {"output": {"dir": os.path.join(d, "afile")}})
        self.add(C, "output_dir_is_file", ["{bin}", "--yaml", y], "reject", {1, 2, 3}, ["afile"],
                 why="output.dir is a regular file")

    # -- class 2: token shards ------------------------------------------------------------
    def shard_case(self, name, data, why, mpi=False, key="train", rc=None, over=None):
        d = self.dir("shard", name)
        path = write(os.path.join(d, "shard.bin"), data)
        verdict = shard_verdict(data, VOCAB)
        over = dict(over or {})
        if key == "val":
            over.setdefault("data", {})["val"] = path
            over.setdefault("train", {})["eval_every"] = 1
            over["train"]["eval_batches"] = 1
        else:
            over.setdefault("data", {})["train"] = path
        if mpi:
            over.setdefault("parallel", {}).update({"tp": 1, "dp": 2})
        expect = {"reject": "reject", "accept": "accept", "either": "accept_or_reject"}[verdict]
        self.run_cfg("shard", name, over, expect, set(rc or {3}), ["shard.bin"], mpi=mpi, why=why)

    def shard_cases(self):
        good = self.train_bytes
        for i, n in enumerate([0, 1, 8, 63, 64, 65] + spread_offsets(self.rng, len(good), 6, lo=66)):
            self.shard_case(f"truncated_{i:02d}_to_{n}", good[:n], "token shard cut short")
        # Flips spread over the whole file; the header gets its own share, since a shard is
        # mostly payload.
        offs = spread_offsets(self.rng, 64, 6) + spread_offsets(self.rng, len(good), 12, lo=64)
        for i, off in enumerate(offs):
            data = flip(good, off, self.rng.randrange(8))
            self.shard_case(f"flip_{i:02d}_at_{off}", data, "random bit flip (expectation from the format)")
        n = 2000
        t = self.nrng.integers(0, VOCAB, n)
        m = np.ones(n, np.uint8)
        sb = shard_bytes
        self.shard_case("tokens_beyond_model_vocab", sb(self.nrng.integers(0, 256, n), 256),
                        "tokens < the shard's vocab_size 256 but >= the model's 64: an embedding read out of bounds")
        self.shard_case("token_u32_max", sb(list(t[:-1]) + [0xFFFFFFFF], 0xFFFFFFFF, 4),
                        "token 2^32-1 with vocab_size 2^32-1")
        for nt in (2 ** 63, 2 ** 64 - 1, 2 ** 40, n + 1, (n * 3) // 2):
            self.shard_case(f"n_tokens_{nt}", sb(t, VOCAB, n_tokens=nt), "declared token count does not match the file")
        self.shard_case("n_tokens_0", sb([], VOCAB), "no tokens")
        self.shard_case("n_tokens_1", sb([1], VOCAB), "one token")
        self.shard_case("shorter_than_window", sb(t[:SEQ - 3], VOCAB), "fewer tokens than one seq_len+1 window",
                        rc={2, 3})
        for tb in (0, 1, 3, 8, 0xFFFFFFFF):
            self.shard_case(f"token_bytes_{tb}", sb(t, VOCAB, token_bytes=tb), "unsupported token width")
        for v in (0, 2, 0xFFFFFFFF):
            self.shard_case(f"version_{v}", sb(t, VOCAB, version=v), "unsupported version")
        self.shard_case("flags_high_bit", sb(t, VOCAB, flags=0x80000000), "unknown flag bit")
        self.shard_case("vocab_0", sb(t, 0), "vocab_size 0")
        self.shard_case("mask_value_2", sb(t, VOCAB, mask=[1] * (n - 1) + [2]), "a mask value of 2")
        self.shard_case("mask_all_zero", sb(t, VOCAB, mask=[0] * n),
                        "nothing to score: refused, or a 0/0 loss stops training (exit 4)", rc={3, 4})
        self.shard_case("magic_lowercase", sb(t, VOCAB, magic=b"ldtokens"), "wrong magic")
        self.shard_case("is_hdf5_file", self.base_bytes, "an HDF5 file given as a token shard")
        self.shard_case("val_truncated", self.val_bytes[:len(self.val_bytes) // 2], "truncated validation shard",
                        key="val")
        self.shard_case("val_flip_header", flip(self.val_bytes, 12, 3), "validation shard with token_bytes 12",
                        key="val")
        self.shard_case("mpi_truncated", good[: len(good) - 7], "truncated shard, 2 ranks: exit 3, no hang", mpi=True)
        self.shard_case("mpi_beyond_vocab", sb(self.nrng.integers(0, 256, n), 256),
                        "tokens beyond the model's vocabulary on 2 ranks", mpi=True)
        d = self.dir("shard", "train_is_directory")
        os.makedirs(os.path.join(d, "shard_dir.bin"), exist_ok=True)
        self.run_cfg("shard", "train_is_directory", {"data": {"train": os.path.join(d, "shard_dir.bin")}}, "reject",
                     {2, 3}, ["shard_dir.bin"], why="data.train is a directory")
        d = self.dir("shard", "train_is_fifo")
        fifo = os.path.join(d, "fifo.bin")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        self.run_cfg("shard", "train_is_fifo", {"data": {"train": fifo}}, "reject", {2, 3}, ["fifo.bin"],
                     why="data.train is a FIFO nobody writes: refuse, never block")

    # -- class 3: HDF5 base weights ----------------------------------------------------------
    def base_case(self, name, path_or_none, why, expect="reject", rc=(3,), names=None, mpi=False, over=None,
                  writer=None, accept_names=()):
        d = self.dir("base", name)
        path = os.path.join(d, "base.h5") if path_or_none is None else path_or_none
        if writer:
            writer(path)
        o = {"model": {"init": "file", "weights_file": path}}
        for s, kv in (over or {}).items():
            o.setdefault(s, {}).update(kv)
        if mpi:
            o.setdefault("parallel", {}).update({"tp": 2, "dp": 1})
        self.run_cfg("base", name, o, expect, set(rc), names if names is not None else [os.path.basename(path)],
                     mpi=mpi, perturb=True, why=why, accept_names=accept_names)

    def base_cases(self):
        import h5py
        T = self.base_t
        names = list(T)
        self.base_case("good", self.base, "the good base file", expect="accept", names=[])
        size = len(self.base_bytes)
        for i, n in enumerate([0, 8, 512] + spread_offsets(self.rng, size, 6, lo=600)):
            self.base_case(f"truncated_{i:02d}_to_{n}", None, "base file cut short",
                           writer=lambda p, n=n: write(p, self.base_bytes[:n]))
        # The first 2 KiB hold the superblock and most metadata; give it its own share.
        offs = spread_offsets(self.rng, 2048, 8) + spread_offsets(self.rng, size, 10, lo=2048)
        for i, off in enumerate(offs):
            d = self.dir("base", f"flip_{i:02d}_at_{off}")
            p = write(os.path.join(d, "base.h5"), flip(self.base_bytes, off, self.rng.randrange(8)))
            probe = h5_probe(p, names)
            expect = "accept_or_reject" if probe == "ok" else "reject"
            self.base_case(os.path.basename(d), p, f"random bit flip (h5py: {probe})", expect=expect)

        def variant(mut, big=None, **kw):
            def w(p):
                t = {k: v.copy() for k, v in T.items()}
                mut(t)
                write_h5(p, t, **kw)
                if big:  # a value only the stored dtype can hold
                    with h5py.File(p, "r+") as f:
                        f[big[0]][big[1]] = big[2]
            return w

        def setv(name, idx, value):
            return variant(lambda t: t[name].__setitem__(idx, value))

        for name, tensor, val in (("nan_wte", "wte", np.nan), ("inf_qkv", "h.0.attn.qkv.weight", np.inf),
                                  ("neginf_ln_f_bias", "ln_f.bias", -np.inf), ("nan_wpe_last", "wpe", np.nan),
                                  ("nan_fc_bias", "h.0.mlp.fc.bias", np.nan)):
            idx = (T[tensor].shape[0] - 1, T[tensor].shape[1] - 1) if "last" in name else (0, 0)
            self.base_case(name, None, f"{val} in {tensor}", names=["base.h5", tensor], writer=setv(tensor, idx, val))
        self.base_case("mpi_tp2_nan_proj", None, "NaN in a row-parallel weight, tp=2: every rank exit 3",
                       names=["base.h5", "h.0.attn.proj.weight"], mpi=True,
                       writer=setv("h.0.attn.proj.weight", (3, 15), np.nan))
        self.base_case("float64", None, "float64 tensors: converted with a note", expect="accept", names=[],
                       accept_names=["float64"],
                       writer=variant(lambda t: None, dtype=np.float64))
        self.base_case("float16", None, "float16 tensors: converted with a note", expect="accept", names=[],
                       accept_names=["float16"],
                       writer=variant(lambda t: None, dtype=np.float16))
        self.base_case("float64_overflows_f32", None, "a float64 value 1e300 that has no float32",
                       names=["base.h5", "h.0.mlp.proj.weight"],
                       writer=variant(lambda t: t["h.0.mlp.proj.weight"].__setitem__((0, 0), 1.0), dtype=np.float64,
                                      big=("h.0.mlp.proj.weight", (0, 0), 1e300)))
        self.base_case("int32", None, "an int32 tensor is refused", names=["base.h5", "wte"],
                       writer=variant(lambda t: t.__setitem__("wte", (t["wte"] * 100).astype(np.int32))))
        self.base_case("uint8", None, "a uint8 tensor is refused", names=["base.h5", "h.0.ln_1.weight"],
                       writer=variant(lambda t: t.__setitem__("h.0.ln_1.weight", t["h.0.ln_1.weight"].astype(np.uint8))))

        def biases_1d(t):
            for k in list(t):
                if k.endswith("bias") or ".ln_" in k or k.startswith("ln_f"):
                    t[k] = t[k].reshape(-1)
        self.base_case("biases_1d", None, "1-D biases and LayerNorm vectors are accepted", expect="accept", names=[],
                       writer=variant(biases_1d))
        self.base_case("transposed_qkv", None, "qkv stored [in, out]", names=["base.h5", "h.0.attn.qkv.weight"],
                       writer=variant(lambda t: t.__setitem__("h.0.attn.qkv.weight", t["h.0.attn.qkv.weight"].T.copy())))
        self.base_case("rank3_fc", None, "a rank-3 dataset", names=["base.h5", "h.0.mlp.fc.weight"],
                       writer=variant(lambda t: t.__setitem__("h.0.mlp.fc.weight",
                                                              t["h.0.mlp.fc.weight"].reshape(4, 16, 16))))
        self.base_case("scalar_ln_f", None, "a scalar dataset", names=["base.h5", "ln_f.weight"],
                       writer=variant(lambda t: t.__setitem__("ln_f.weight", np.float32(1.0))))
        self.base_case("missing_tensor", None, "a tensor left out", names=["base.h5", "h.0.mlp.proj.bias"],
                       writer=variant(lambda t: t.pop("h.0.mlp.proj.bias")))

        def huge(name, shape):
            def w(p):
                write_h5(p, {k: v for k, v in T.items() if k != name})
                with h5py.File(p, "r+") as f:
                    f.create_dataset(name, shape=shape, dtype="f4", chunks=(1,) * (len(shape) - 1) + (16,))
            return w
        self.base_case("huge_wte_2pow31_rows", None, "wte declared [2^31, 16] (metadata only)",
                       names=["base.h5", "wte"], writer=huge("wte", (2 ** 31, 16)))
        self.base_case("huge_fc_2pow40", None, "a dataset declared [2^40, 2^20]",
                       names=["base.h5", "h.0.mlp.fc.weight"], writer=huge("h.0.mlp.fc.weight", (2 ** 40, 2 ** 20)))

        def w_group(p):
            write_h5(p, {k: v for k, v in T.items() if k != "wpe"})
            with h5py.File(p, "r+") as f:
                f.create_group("wpe")
        self.base_case("tensor_is_group", None, "a tensor name that is a group", names=["base.h5", "wpe"],
                       writer=w_group)

        def w_link(kind):
            def w(p):
                write_h5(p, {k: v for k, v in T.items() if k != "ln_f.bias"})
                with h5py.File(p, "r+") as f:
                    if kind == "soft":
                        f["ln_f.bias"] = h5py.SoftLink("/nowhere")
                    else:
                        f["ln_f.bias"] = h5py.ExternalLink(os.path.join(os.path.dirname(p), "gone.h5"), "/x")
            return w
        self.base_case("dangling_soft_link", None, "a dangling soft link", names=["base.h5", "ln_f.bias"],
                       writer=w_link("soft"))
        self.base_case("dangling_external_link", None, "an external link to a missing file",
                       names=["base.h5", "ln_f.bias"], writer=w_link("ext"))

        def w_external_raw(p):
            write_h5(p, {k: v for k, v in T.items() if k != "wpe"})
            with h5py.File(p, "r+") as f:
                f.create_dataset("wpe", shape=T["wpe"].shape, dtype="f4",
                                 external=[(os.path.join(os.path.dirname(p), "missing.raw"), 0, h5py.h5f.UNLIMITED)])
        self.base_case("external_raw_missing", None, "raw external storage in a missing file",
                       names=["base.h5", "wpe"], writer=w_external_raw)
        self.base_case("gzip_chunked", None, "gzip-compressed chunked datasets", expect="accept", names=[],
                       writer=variant(lambda t: None, compression="gzip", chunks=True))
        self.base_case("lzf_filter_unavailable", None, "h5py's LZF filter, which libhdf5 cannot decode",
                       names=["base.h5"], writer=variant(lambda t: None, compression="lzf", chunks=True))
        self.base_case("big_endian", None, "big-endian float32: libhdf5 converts", expect="accept", names=[],
                       writer=variant(lambda t: None, dtype=">f4"))
        self.base_case("string_dataset", None, "a string where a tensor should be", names=["base.h5", "ln_f.weight"],
                       writer=variant(lambda t: t.__setitem__("ln_f.weight", "hello"),
                                      dtype=None))
        self.base_case("not_hdf5_text", None, "a text file", writer=lambda p: write(p, b"this is not HDF5\n" * 50))
        self.base_case("token_shard_as_base", None, "a token shard given as base weights",
                       writer=lambda p: write(p, self.train_bytes))
        self.base_case("other_shape", self.base, "a base file for d_model 16 used with d_model 32",
                       names=["base.h5"], over={"model": {"d_model": 32}})
        d = self.dir("base", "is_directory")
        os.makedirs(os.path.join(d, "dir.h5"), exist_ok=True)
        self.base_case("is_directory", os.path.join(d, "dir.h5"), "weights_file is a directory", rc=(2, 3))

    # -- class 4: checkpoints and adapters ---------------------------------------------------
    def ckpt_cases(self):
        import h5py
        C = "checkpoint"
        good = self.ckpt[2]
        with open(good, "rb") as f:
            gb = f.read()
        size = len(gb)
        ds_names = checkpoint_names(good)

        def explicit(name, writer, why, rc=(3,), names=("ckpt.h5",), expect="reject", mpi=False):
            d = self.dir(C, name)
            p = os.path.join(d, "ckpt.h5")
            writer(p)
            o = {"checkpoint": {"resume": p}}
            if mpi:
                o["parallel"] = {"tp": 2, "dp": 1}
            self.run_cfg(C, name, o, expect, set(rc), names, mpi=mpi, perturb=True, why=why)

        for i, n in enumerate([0, 8, 100] + spread_offsets(self.rng, size, 6, lo=200)):
            explicit(f"explicit_truncated_{i:02d}_to_{n}", lambda p, n=n: write(p, gb[:n]),
                     "resume: <path> of a truncated checkpoint -> exit 3")
        for i, off in enumerate(spread_offsets(self.rng, 2048, 5) + spread_offsets(self.rng, size, 9, lo=2048)):
            explicit(f"explicit_flip_{i:02d}_at_{off}",
                     lambda p, off=off: write(p, flip(gb, off, self.rng.randrange(8))),
                     "resume: <path> of a bit-flipped checkpoint -> exit 3 (the seal covers every byte)")

        def edited(fn):
            def w(p):
                shutil.copyfile(good, p)
                with h5py.File(p, "r+") as f:
                    fn(f)
            return w

        lora_ds = [n for n in ds_names if n.startswith("adapter/")]
        m_ds = [n for n in ds_names if n.startswith("optimizer/m/")]
        v_ds = [n for n in ds_names if n.startswith("optimizer/v/")]
        for name, ds, val in (("nan_adapter", lora_ds[0], np.nan), ("inf_adapter_B", lora_ds[-1], np.inf),
                              ("nan_adam_m", m_ds[0], np.nan), ("inf_adam_v", v_ds[-1], np.inf),
                              ("negative_adam_v", v_ds[0], -1.0)):
            def fn(f, ds=ds, val=val):
                a = f[ds][()]
                a.flat[a.size // 2] = val
                f[ds][...] = a
            explicit(name, edited(fn), f"{val} written into {ds} with h5py")

        def set_attr(group, attr, value):
            def fn(f):
                f[group].attrs[attr] = value
            return fn
        for name, g, a, v in (("step_1e12", "state", "step", np.int64(10 ** 12)),
                              ("step_negative", "state", "step", np.int64(-1)),
                              ("samples_2pow63", "state", "samples_consumed", np.int64(2 ** 63 - 1)),
                              ("adam_step_2pow62", "optimizer", "adam_step", np.int64(2 ** 62)),
                              ("r_zero", "adapter", "r", np.int64(0)),
                              ("scale_nan", "adapter", "scale", np.float64(np.nan)),
                              ("d_model_as_string", "state", "d_model", "sixteen")):
            explicit(name, edited(set_attr(g, a, v)), f"/{g} attribute {a} set to {v!r}")

        # Values no run writes, in files resealed after the edit (a tool that edits and reseals, or
        # a faulty writer): the seal verifies, the contents check refuses them naming the attribute
        # or dataset. The good file resealed unedited is accepted, so the seal itself is right.
        def resealed(fn):
            return then_resealed(edited(fn))
        explicit("resealed_unedited", resealed(lambda f: None), "the good checkpoint resealed by the test's own "
                 "sealer: accepted", expect="accept", rc=(), names=())

        def negative_v(f):
            a = f[v_ds[0]][()]
            a.flat[a.size // 2] = -1e-3
            f[v_ds[0]][...] = a
        explicit("resealed_negative_adam_v", resealed(negative_v), f"a negative second moment in {v_ds[0]}, resealed",
                 names=("ckpt.h5", v_ds[0], "negative"))
        for name, g, a, v in (("scale_nan", "adapter", "scale", np.float64(np.nan)),
                              ("scale_not_alpha_over_r", "adapter", "scale", np.float64(3.0)),
                              ("alpha_negative", "adapter", "alpha", np.float64(-4.0)),
                              ("dropout_one", "adapter", "dropout", np.float64(1.0)),
                              ("beta1_negative", "optimizer", "beta1", np.float64(-0.5)),
                              ("beta2_one", "optimizer", "beta2", np.float64(1.0)),
                              ("eps_zero", "optimizer", "eps", np.float64(0.0)),
                              ("weight_decay_inf", "optimizer", "weight_decay", np.float64(np.inf)),
                              ("adam_step_negative", "optimizer", "adam_step", np.int64(-3)),
                              ("step_negative", "state", "step", np.int64(-1)),
                              ("lr_zero", "state", "lr", np.float64(0.0)),
                              ("lr_next_above_lr", "state", "lr_next", np.float64(1.0)),
                              ("lr_next_nan", "state", "lr_next", np.float64(np.nan)),
                              ("min_lr_ratio_two", "state", "min_lr_ratio", np.float64(2.0)),
                              ("warmup_negative", "state", "warmup_steps", np.int64(-1)),
                              ("decay_unknown", "state", "decay", np.bytes_(b"exponential")),
                              ("batch_size_zero", "state", "batch_size", np.int64(0)),
                              ("samples_consumed_wrong", "state", "samples_consumed", np.int64(7)),
                              ("written_tp_zero", "state", "written_tp", np.int64(0))):
            explicit(f"resealed_{name}", resealed(set_attr(g, a, v)), f"/{g} attribute {a} set to {v!r}, resealed",
                     names=("ckpt.h5", f"/{g}", f"'{a}'"))
        explicit("resealed_r_zero", resealed(set_attr("adapter", "r", np.int64(0))), "/adapter attribute r set to 0, "
                 "resealed: refused as another rank than the run's", names=("ckpt.h5", "r 0 in the checkpoint"))

        def huge_ds(f):
            n = lora_ds[0]
            del f[n]
            f.create_dataset(n, shape=(2 ** 31, 16), dtype="f4", chunks=(1, 16))
        explicit("huge_adapter_shape", edited(huge_ds), "an adapter tensor declared [2^31, 16]")
        explicit("adapter_as_int32", edited(lambda f: (f.__setitem__("tmp", f[lora_ds[0]][()].astype(np.int32)),
                                                       f.__delitem__(lora_ds[0]), f.move("tmp", lora_ds[0]))),
                 "an adapter tensor stored as int32")
        explicit("no_optimizer_group", edited(lambda f: f.__delitem__("optimizer")), "the /optimizer group removed")
        explicit("base_file_as_checkpoint", lambda p: shutil.copyfile(self.base, p), "a base-weights file given to resume")
        explicit("shard_as_checkpoint", lambda p: write(p, self.train_bytes), "a token shard given to resume")
        explicit("mpi_tp2_flip", lambda p: write(p, flip(gb, size // 2, 2)),
                 "2 ranks resuming a bit-flipped checkpoint: exit 3 everywhere, no hang", mpi=True)

        # resume: auto over a damaged newest checkpoint: skip it (warning naming it), resume from
        # step 2, train step 3, exit 0.
        with open(self.ckpt[3], "rb") as f:
            newest = f.read()

        def auto(name, damage, why, also_bad_older=False):
            d = self.dir(C, name)
            cdir = os.path.join(d, "out", "checkpoints")
            os.makedirs(cdir, exist_ok=True)
            for s in (1, 2):
                src = self.ckpt[s]
                if also_bad_older:
                    with open(src, "rb") as f:
                        write(os.path.join(cdir, f"step_{s:08d}.h5"), f.read()[: 1000])
                else:
                    shutil.copyfile(src, os.path.join(cdir, f"step_{s:08d}.h5"))
            write(os.path.join(cdir, "step_00000003.h5"), damage(newest))
            self.run_cfg(C, name, {"checkpoint": {"resume": "auto"}}, "accept", (), (),
                         accept_names=["skipping checkpoint", "step_00000003.h5"], perturb=True, why=why)

        for i, off in enumerate(spread_offsets(self.rng, len(newest), 6)):
            b = self.rng.randrange(8)
            auto(f"auto_flip_{i:02d}_at_{off}", lambda x, off=off, b=b: flip(x, off, b),
                 "resume: auto skips a bit-flipped newest checkpoint with a warning, trains on from the older one")
        for i, n in enumerate(spread_offsets(self.rng, len(newest), 3)):
            auto(f"auto_truncated_{i:02d}_to_{n}", lambda x, n=n: x[:n],
                 "resume: auto skips a truncated newest checkpoint")
        auto("auto_all_damaged", lambda x: x[: len(x) // 3], "resume: auto with every checkpoint damaged: "
             "warnings, then training from scratch", also_bad_older=True)

        # merge --adapter with a damaged adapter.h5
        with open(self.adapter, "rb") as f:
            ab = f.read()

        def merge(name, writer, why, expect="reject", rc=(3,)):
            d = self.dir(C, name)
            p = os.path.join(d, "adapter.h5")
            writer(p)
            y = self.yaml(d)  # the fixture run's own base (init: seed), which the adapter fits
            self.add(C, name, ["{bin}", "merge", "--yaml", y, "--adapter", p, "--out", os.path.join(d, "merged.h5")],
                     expect, set(rc), [] if expect == "accept" else ["adapter.h5"], perturb=True, why=why)

        merge("merge_good_adapter", lambda p: shutil.copyfile(self.adapter, p), "merge of the good adapter",
              expect="accept")
        for i, off in enumerate(spread_offsets(self.rng, len(ab), 5)):
            merge(f"merge_flip_{i:02d}_at_{off}", lambda p, off=off: write(p, flip(ab, off, self.rng.randrange(8))),
                  "merge --adapter of a bit-flipped adapter.h5")
        for i, n in enumerate(spread_offsets(self.rng, len(ab), 3)):
            merge(f"merge_truncated_{i:02d}_to_{n}", lambda p, n=n: write(p, ab[:n]), "merge of a truncated adapter")
        adapter_names = [n for n in checkpoint_names(self.adapter)]

        def adapter_edit(fn):
            def w(p):
                shutil.copyfile(self.adapter, p)
                with h5py.File(p, "r+") as f:
                    fn(f)
            return w

        def nan_first(f):
            a = f[adapter_names[0]][()]
            a.flat[0] = np.nan
            f[adapter_names[0]][...] = a
        merge("merge_nan_adapter", adapter_edit(nan_first), "NaN in the adapter being merged")

        def adapter_resealed(fn):
            return then_resealed(adapter_edit(fn))
        merge("merge_resealed_unedited", adapter_resealed(lambda f: None), "the good adapter resealed: accepted",
              expect="accept")
        for name, a, v in (("scale_nan", "scale", np.float64(np.nan)), ("alpha_zero", "alpha", np.float64(0.0)),
                           ("dropout_negative", "dropout", np.float64(-0.1))):
            merge(f"merge_resealed_{name}", adapter_resealed(set_attr("adapter", a, v)),
                  f"/adapter attribute {a} set to {v!r} in adapter.h5, resealed")

        def huge_first(f):
            del f[adapter_names[0]]
            f.create_dataset(adapter_names[0], shape=(2 ** 40, 2 ** 10), dtype="f4", chunks=(1, 16))
        merge("merge_huge_adapter_shape", adapter_edit(huge_first), "an adapter tensor declared [2^40, 2^10]")

    # -- class: adapters out and in (export, lora.init_from, generate) ----------------------
    def adapter_cases(self):
        """`export` of damaged adapters and into bad folders; PEFT folders damaged every way and
        read by `lora.init_from` (a training run) and by `generate --peft` (also at tp 2);
        `generate`'s prompts, tokenizers and options."""
        C = "adapter"
        fixture_yaml = os.path.join(self.fx, "fixture_run.yaml")
        good_peft = os.path.join(self.fx, "peft")
        p = subprocess.run([self.fixture_bin, "export", "--yaml", fixture_yaml, "--adapter", self.adapter, "--peft",
                            good_peft], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            sys.exit(f"generate.py: the fixture export failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
        with open(os.path.join(good_peft, "adapter_model.safetensors"), "rb") as f:
            st_good = f.read()
        with open(os.path.join(good_peft, "adapter_config.json")) as f:
            cfg_good = json.load(f)
        (hlen,) = struct.unpack("<Q", st_good[:8])
        header = json.loads(st_good[8:8 + hlen])
        names = sorted(k for k in header if k != "__metadata__")
        gen = ["--tokenizer", "bytes", "--prompt", "0123", "--max-new-tokens", "4"]  # bytes below vocab 64

        # export --adapter of damaged adapters; export into folders that cannot take it
        with open(self.adapter, "rb") as f:
            ab = f.read()

        def export(name, adapter_bytes, why, expect="reject", rc=(3,), names=("adapter.h5",), out=None):
            d = self.dir(C, name)
            a = write(os.path.join(d, "adapter.h5"), adapter_bytes)
            self.add(C, name, ["{bin}", "export", "--yaml", self.yaml(d), "--adapter", a, "--peft",
                               out or os.path.join(d, "peft"), "--merged", os.path.join(d, "merged")],
                     expect, set(rc), [] if expect == "accept" else names, perturb=True, why=why)
        export("export_good", ab, "export of the good adapter", expect="accept")
        for i, n in enumerate([0, 100] + spread_offsets(self.rng, len(ab), 2, lo=200)):
            export(f"export_truncated_{i:02d}_to_{n}", ab[:n], "export --adapter of a truncated adapter.h5")
        for i, off in enumerate(spread_offsets(self.rng, len(ab), 3)):
            export(f"export_flip_{i:02d}_at_{off}", flip(ab, off, self.rng.randrange(8)),
                   "export --adapter of a bit-flipped adapter.h5 (the seal covers every byte)")
        d = self.dir(C, "export_into_nonempty_folder")
        write(os.path.join(d, "peft", "keep.txt"), b"user data")
        export("export_into_nonempty_folder", ab, "export --peft into a folder holding a file: exit 2, nothing lost",
               rc=(2,), names=("peft",), out=os.path.join(d, "peft"))
        d = self.dir(C, "export_under_a_file")
        write(os.path.join(d, "afile"), b"x")
        export("export_under_a_file", ab, "export --peft under a regular file", rc=(2,), names=("afile",),
               out=os.path.join(d, "afile", "peft"))

        # PEFT folders: each damage read by lora.init_from, the binary ones also by generate --peft
        def peft(name, why, st=None, config=None, files=None, expect="reject", rc=(3,), names=None, gen_too=False):
            d = self.dir(C, name)
            folder = os.path.join(d, "peft")
            os.makedirs(folder, exist_ok=True)
            if config is not None:
                write(os.path.join(folder, "adapter_config.json"),
                      config if isinstance(config, bytes) else json.dumps(config).encode())
            if st is not None:
                write(os.path.join(folder, "adapter_model.safetensors"), st)
            for fname, data in (files or {}).items():
                write(os.path.join(folder, fname), data)
            nm = names if names is not None else ["adapter_model.safetensors"]
            self.run_cfg(C, "init_from_" + name, {"lora": {"init_from": folder}}, expect, set(rc), nm, perturb=True,
                         why="lora.init_from: " + why)
            if gen_too:
                y = self.yaml(d, name="gen.yaml")
                self.add(C, "generate_" + name, ["{bin}", "generate", "--yaml", y, "--peft", folder] + gen, expect,
                         set(rc), nm, perturb=True, why="generate --peft: " + why)

        peft("good", "the exported folder", st_good, cfg_good, expect="accept", gen_too=True)
        for i, n in enumerate([0, 7, 8, 8 + hlen // 2, 8 + hlen] + spread_offsets(self.rng, len(st_good), 2, lo=9 + hlen)):
            peft(f"truncated_{i:02d}_to_{n}", "adapter_model.safetensors cut short", st_good[:n], cfg_good,
                 gen_too=i % 2 == 0)
        for i, off in enumerate(spread_offsets(self.rng, 8 + hlen, 6) +
                                spread_offsets(self.rng, len(st_good), 3, lo=8 + hlen)):
            peft(f"flip_{i:02d}_at_{off}", "a bit flip in adapter_model.safetensors",
                 flip(st_good, off, self.rng.randrange(8)), cfg_good, expect="accept_or_reject", gen_too=i % 3 == 0)
        peft("header_length_2_40", "header length 2^40", struct.pack("<Q", 2 ** 40) + st_good[8:], cfg_good,
             gen_too=True)

        def edit_header(fn):
            h = json.loads(st_good[8:8 + hlen])
            fn(h)
            text = json.dumps(h).encode()
            text += b" " * (-len(text) % 8)
            return struct.pack("<Q", len(text)) + text + st_good[8 + hlen:]

        def swap_shape(h):
            e = h[names[0]]
            e["shape"] = e["shape"][::-1]
        peft("transposed_factor", "a factor stored [in, r] instead of [r, in]", edit_header(swap_shape), cfg_good,
             names=[names[0]])

        def as_i32(h):
            h[names[0]]["dtype"] = "I32"
        peft("integer_factor", "a factor in I32", edit_header(as_i32), cfg_good, names=[names[0], "I32"])

        def drop_last(h):
            del h[names[-1]]
        peft("missing_factor", "a factor missing", edit_header(drop_last), cfg_good, names=[names[-1]])
        a0 = header[names[0]]["data_offsets"][0]
        nan = bytearray(st_good)
        nan[8 + hlen + a0:8 + hlen + a0 + 4] = struct.pack("<f", float("nan"))
        peft("nan_factor", "NaN in a factor", bytes(nan), cfg_good, names=["adapter_model.safetensors"], gen_too=True)
        half = {}
        for k in names:
            b0, b1 = header[k]["data_offsets"]
            half[k] = np.frombuffer(st_good[8 + hlen + b0:8 + hlen + b1], "<f4").reshape(header[k]["shape"])
        text, blobs, off = {}, [], 0
        for k in names:
            b = half[k].astype("<f2").tobytes()
            text[k] = {"dtype": "F16", "shape": list(half[k].shape), "data_offsets": [off, off + len(b)]}
            blobs.append(b)
            off += len(b)
        t = json.dumps(text).encode()
        t += b" " * (-len(t) % 8)
        peft("f16_factors", "the factors in F16 (PEFT saving a half-precision model)",
             struct.pack("<Q", len(t)) + t + b"".join(blobs), cfg_good, expect="accept", gen_too=True)
        cfg_names = ["adapter_config.json"]
        for name, c, why in (
                ("config_not_json", b"{\"r\": 2,", "adapter_config.json cut short"),
                ("config_empty", b"", "an empty adapter_config.json"),
                ("config_nested", b"[" * 100000, "adapter_config.json nested 100000 deep"),
                ("config_list", b"[1, 2]", "adapter_config.json a list"),
                ("config_rank_6", dict(cfg_good, rank_pattern={"c_attn": 6}), "c_attn rank 6 for q,v at r 2"),
                ("config_rank_string", dict(cfg_good, rank_pattern={"c_attn": "4"}), "a rank that is a string"),
                ("config_r_string", dict(cfg_good, r="2", rank_pattern=None), "r a string"),
                ("config_alpha_other_scale", dict(cfg_good, alpha_pattern={"c_attn": 5}),
                 "an alpha giving another scale"),

                ("config_alpha_nan", b'{"r": 2, "lora_alpha": NaN}', "lora_alpha NaN (not JSON)"),
                ("config_other_targets", dict(cfg_good, target_modules=["c_fc"]), "target_modules another set"),
                ("config_targets_string", dict(cfg_good, target_modules="c_attn"), "target_modules a string"),
                ("config_rslora", dict(cfg_good, use_rslora=True), "use_rslora against lora.rslora false"),
                ("config_bias_all", dict(cfg_good, bias="all"), "bias all (lora_dist trains none)"),
                ("config_not_lora", dict(cfg_good, peft_type="PREFIX_TUNING"), "another PEFT method")):
            peft(name, why, st_good, c, names=cfg_names)
        peft("config_top_level_only", "r 2 without the pattern: c_attn's stacked factors are rank 4", st_good,
             dict(cfg_good, rank_pattern=None, alpha_pattern=None), names=["c_attn.lora_A.weight", "[4, 16]"])
        peft("config_missing", "no adapter_config.json", st_good, None, names=cfg_names, gen_too=True)
        peft("weights_missing", "no adapter_model.safetensors", None, cfg_good, gen_too=True)

        # generate at tp 2 with a damaged PEFT folder: every rank leaves, none hangs
        d = self.dir(C, "generate_tp2_truncated_peft")
        folder = os.path.join(d, "peft")
        write(os.path.join(folder, "adapter_config.json"), json.dumps(cfg_good).encode())
        write(os.path.join(folder, "adapter_model.safetensors"), st_good[: len(st_good) // 2])
        y = self.yaml(d, {"parallel": {"tp": 2, "dp": 1}})
        self.add(C, "generate_tp2_truncated_peft", MPI + ["{bin}", "generate", "--yaml", y, "--peft", folder] + gen,
                 "reject", {3}, ["adapter_model.safetensors"], why="generate --peft at tp 2, folder cut short")

        # generate: prompts, tokenizers, options
        d = self.dir(C, "generate_common")
        y = self.yaml(d)
        y_bpe = self.yaml(d, {"model": {"vocab_size": 50257}}, name="bpe.yaml")
        tok = os.path.join(self.fx, "gpt2_tokenizer")  # hf_cases made it
        latin = write(os.path.join(d, "latin1.txt"), "caf\u00e9".encode("latin-1"))
        long_prompt = write(os.path.join(d, "long.txt"), b"0" * 40)
        bad_vocab = os.path.join(d, "badtok")
        os.makedirs(bad_vocab, exist_ok=True)
        write(os.path.join(bad_vocab, "vocab.json"), b'{"a": 0, "b": ')
        shutil.copy(os.path.join(tok, "merges.txt"), bad_vocab)
        g = ["{bin}", "generate", "--yaml", y]
        for name, argv, expect, rc, nm, why in (
                ("generate_good_adapter", g + ["--adapter", self.adapter] + gen, "accept", (), [], "the fixture adapter"),
                ("generate_good_base", g + gen, "accept", (), [], "no adapter"),
                ("generate_good_bpe", ["{bin}", "generate", "--yaml", y_bpe, "--tokenizer", tok, "--prompt", "Hello",
                                       "--max-new-tokens", "3", "--temperature", "0.7", "--top-k", "5", "--top-p",
                                       "0.9"], "accept", (), [], "GPT-2 tokenizer, sampling"),
                ("generate_adapter_other_vocab", ["{bin}", "generate", "--yaml", y_bpe, "--tokenizer", tok,
                                                  "--prompt", "Hi", "--adapter", self.adapter], "reject", (3,),
                 ["adapter.h5"], "an adapter trained on another base"),
                ("generate_adapter_truncated", g + ["--adapter", write(os.path.join(d, "cut.h5"), ab[: len(ab) // 2])]
                 + gen, "reject", (3,), ["cut.h5"], "a truncated adapter.h5"),
                ("generate_prompt_file_missing", g + ["--tokenizer", "bytes", "--prompt-file",
                                                      os.path.join(d, "none.txt")], "reject", (3,), ["none.txt"],
                 "a prompt file that is not there"),
                ("generate_prompt_file_latin1", ["{bin}", "generate", "--yaml", y_bpe, "--tokenizer", tok,
                                                 "--prompt-file", latin], "reject", (3,), ["latin1.txt", "UTF-8"],
                 "a prompt file that is not UTF-8, GPT-2 tokenizer"),
                ("generate_prompt_byte_beyond_vocab", g + ["--tokenizer", "bytes", "--prompt", "abc"], "reject", (2,),
                 ["byte 97", "model.vocab_size 64"], "byte tokens beyond a 64-token vocabulary"),
                ("generate_prompt_too_long", g + ["--tokenizer", "bytes", "--prompt-file", long_prompt], "reject", (2,),
                 ["40 tokens", "model.context 16"], "a prompt longer than the context"),
                ("generate_no_tokenizer", g + ["--prompt", "01"], "reject", (2,), ["--tokenizer"],
                 "a seeded base has no tokenizer folder"),
                ("generate_tokenizer_too_big", g + ["--tokenizer", tok, "--prompt", "01"], "reject", (2,),
                 ["model.vocab_size 64"], "the GPT-2 vocabulary for a 64-token model"),
                ("generate_tokenizer_bad_vocab", ["{bin}", "generate", "--yaml", y_bpe, "--tokenizer", bad_vocab,
                                                  "--prompt", "Hi"], "reject", (3,), ["vocab.json"],
                 "vocab.json cut short"),
                ("generate_tokenizer_missing", g + ["--tokenizer", os.path.join(d, "nodir"), "--prompt", "01"],
                 "reject", (3,), ["nodir"], "a tokenizer folder that is not there"),
                ("generate_no_prompt", g + ["--tokenizer", "bytes"], "reject", (2,), ["--prompt"], "no prompt"),
                ("generate_both_prompts", g + ["--prompt", "0", "--prompt-file", long_prompt], "reject", (2,),
                 ["excludes"], "--prompt and --prompt-file"),
                ("generate_adapter_and_peft", g + gen + ["--adapter", self.adapter, "--peft", good_peft], "reject",
                 (2,), ["excludes"], "--adapter and --peft"),
                ("generate_max_new_0", g + gen + ["--max-new-tokens", "0"], "reject", (2,), ["--max-new-tokens"],
                 "--max-new-tokens 0"),
                ("generate_temperature_nan", g + gen + ["--temperature", "nan"], "reject", (2,), ["--temperature"],
                 "--temperature nan"),
                ("generate_top_p_2", g + gen + ["--top-p", "2"], "reject", (2,), ["--top-p"], "--top-p 2"),
                ("generate_top_k_negative", g + gen + ["--top-k", "-1"], "reject", (2,), ["--top-k"], "--top-k -1"),
                ("generate_seed_text", g + gen + ["--seed", "abc"], "reject", (2,), ["--seed"], "--seed abc"),
                ("generate_empty_stop", g + gen + ["--stop", ""], "reject", (2,), ["--stop"], "an empty --stop"),
                ("generate_json_missing_folder", g + gen + ["--json", os.path.join(d, "no", "g.jsonl")], "reject",
                 (2,), ["--json", "no"], "--json into a missing folder")):
            self.add(C, name, argv, expect, set(rc), nm, why=why)
        self.add(C, "generate_rank_count_mismatch", MPI + g + gen, "reject", {2}, ["tp*dp"],
                 why="2 ranks for a tp 1 x dp 1 config")

    # -- class 5: command lines --------------------------------------------------------------
    def cli_cases(self):
        C = "cli"
        d = self.dir(C, "common")
        y = self.yaml(d)
        bench = ["{bin}", "bench", "--yaml", y]

        def cli(name, argv, rc=(2,), names=(), expect="reject", why="", mpi=False):
            self.add(C, name, (MPI if mpi else []) + argv, expect, set(rc), names, why=why)

        cli("no_arguments", ["{bin}"], names=["--yaml"], why="nothing given")
        cli("unknown_option", ["{bin}", "--bogus"], names=["--bogus"], why="CLI11 error must map to exit 2")
        cli("yaml_without_value", ["{bin}", "--yaml"], names=["--yaml"], why="--yaml with no value")
        cli("yaml_empty_value", ["{bin}", "--yaml="], names=["lora_dist"], why="--yaml= (empty)")
        cli("yaml_is_directory", ["{bin}", "--yaml", d], names=[os.path.basename(d)], why="--yaml on a directory")
        cli("yaml_missing", ["{bin}", "--yaml", os.path.join(d, "nope.yaml")], names=["nope.yaml"],
            why="--yaml names a missing file")
        cli("unknown_subcommand", ["{bin}", "frobnicate", "--yaml", y], names=["frobnicate"],
            why="an unknown subcommand")
        cli("extra_positional", ["{bin}", "--yaml", y, "stray"], names=["stray"], why="a stray argument")
        cli("bench_without_yaml", ["{bin}", "bench"], names=["--yaml"], why="bench needs --yaml")
        for v in ("0", "-3", "abc", "2147483648", "1000000000000"):
            cli(f"bench_steps_{v}", bench + ["--steps", v], names=["--steps"], why=f"bench --steps {v}")
        cli("bench_warmup_negative", bench + ["--warmup", "-1"], names=["--warmup"], why="bench --warmup -1")
        for v in ("nan", "inf", "-5", "0"):
            cli(f"bench_peak_{v}", bench + ["--peak-gflops-per-core", v], names=["peak-gflops-per-core"],
                why=f"bench --peak-gflops-per-core {v}")
        cli("bench_json_missing_folder",
            bench + ["--steps", "1", "--warmup", "0", "--peak-gflops-per-core", "10", "--json",
                     os.path.join(d, "no", "such", "bench.json")], names=["--json", "no/such"],
            why="bench --json into a missing folder: refused up front (exit 2), naming the option and folder")
        cli("bench_good", bench + ["--steps", "1", "--warmup", "0", "--peak-gflops-per-core", "10"],
            expect="accept", why="a good bench command")
        cli("merge_without_out", ["{bin}", "merge", "--yaml", y, "--adapter", self.adapter], names=["--out"],
            why="merge needs --out")
        cli("merge_adapter_missing", ["{bin}", "merge", "--yaml", y, "--adapter", os.path.join(d, "gone.h5"),
                                      "--out", os.path.join(d, "m.h5")], rc=(2, 3), names=["gone.h5"],
            why="merge --adapter names a missing file")
        cli("merge_out_missing_folder", ["{bin}", "merge", "--yaml", y, "--adapter", self.adapter, "--out",
                                         os.path.join(d, "no", "dir", "merged.h5")], rc=(1, 2, 3),
            names=["no/dir"], why="merge --out into a missing folder, named in the message")
        cli("long_argument", ["{bin}", "--yaml", "x" * 100_000], names=["lora_dist"], why="a 100 kB argument")
        cli("non_utf8_argument", ["{bin}", "--yaml", os.path.join(d, "caf\udce9.yaml")], names=["caf"],
            why="a file name that is not UTF-8")
        cli("version", ["{bin}", "--version"], expect="accept", why="--version")
        cli("help", ["{bin}", "--help"], expect="accept", why="--help")
        cli("mpi_rank_count_mismatch", ["{bin}", "--yaml", y], names=["run.yaml", "tp*dp"], mpi=True,
            why="2 ranks for a tp 1 x dp 1 config")
        cli("mpi_yaml_is_directory", ["{bin}", "--yaml", d], names=[os.path.basename(d)], mpi=True,
            why="--yaml on a directory, 2 ranks")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="folder for fixtures, cases and cases.json (emptied first)")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--fixture-bin", required=True, help="a lora_dist binary to make the good checkpoints with")
    args = ap.parse_args()
    print(f"generated {len(generate(args.work, args.seed, args.fixture_bin))} cases in {args.work}/cases.json")


def generate(work, seed, fixture_bin):
    shutil.rmtree(work, ignore_errors=True)
    g = Gen(work, seed, fixture_bin)
    g.fixtures()
    g.yaml_cases()
    g.shard_cases()
    g.base_cases()
    g.hf_cases()
    g.ckpt_cases()
    g.adapter_cases()
    g.cli_cases()
    names = [f"{c['cls']}/{c['name']}" for c in g.cases]
    assert len(names) == len(set(names)), "duplicate case names"
    with open(os.path.join(g.work, "cases.json"), "w") as f:
        json.dump(g.cases, f, indent=1)
    return g.cases


if __name__ == "__main__":
    main()
