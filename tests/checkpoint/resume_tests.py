#!/usr/bin/env python3
"""Checkpoint and resume through the real binary over mpirun (registered in tests/checkpoint.cmake).

    resume_tests.py CASE --bin build/lora_dist --work DIR --data data/demo_train.bin

Each case trains a small model (2 layers, d_model 64, LoRA r=4 on every target, dropout 0.1)
for a few steps, once straight through and once interrupted, and compares what the
interrupted run logs and writes with the straight run:

  same_layout   4 steps + resume + 6 at tp=2 x dp=2: losses and final tensors bit-identical
  same_layout_bf16  the same with model.dtype bf16
  same_layout_nf4   the same with model.dtype nf4 (d_model 128: whole 64-weight blocks a rank),
                then a cross-layout resume (tp=2 x dp=2 -> tp=1 x dp=2, round-off) and an fp32
                config resuming it (allowed: the adapter is fp32; the change is named)
  llama         the same with the Llama block (GQA 4 on 2 KV heads, head_dim 24, SwiGLU 160, q/k/v
                biases, llama3 RoPE, an untied head, LoRA on its 7 targets), then a cross-layout
                resume (tp=2 x dp=2 -> tp=1 x dp=2, round-off), and a GPT config refusing its
                checkpoint (exit 3: the arch differs)
  cross_layout  written at tp=1 x dp=2, resumed at tp=2 x dp=1: equal within fp32 round-off
  full_finetuning  lora.enabled: false: the same-layout resume (whole model and AdamW moments
                bit-identical, model.h5 the final weights), a cross-layout resume (tp=1 x dp=2 ->
                tp=2 x dp=1, round-off), export --merged of model.h5 as an HF folder (every tensor
                exact), and LoRA and full checkpoints refusing each other (exit 3)
  kill9         kill -9 of the whole job at many instants, several inside a checkpoint write:
                the newest complete checkpoint always loads and the resumed run is bit-identical
  fallback      resume: auto skips damaged newer checkpoints (reported) for the previous good one:
                a bit flipped in a tensor, in an attribute's header, in the superblock, in the seal
  refused       other r / other base / truncated / unsealed: exit 3 with one message saying what
                is wrong
  every_minutes checkpoint.every_minutes alone saves mid-run, all ranks agreeing when
  sigterm       SIGTERM (to every rank, twice) or SIGUSR1 (to one rank only) mid-run: exit 75,
                checkpoint of the step written, resuming continues bit-identically

Interrupted runs continue in the same output folder, so their metrics.jsonl can hold a step
twice (logged, then killed before its checkpoint): the last record of a step is the one
that counts, as for a reader of a requeued job's log.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

try:
    import h5py
except ImportError:  # the interpreter has no h5py: nothing here can be checked
    print("skipped: this python3 has no h5py")
    sys.exit(77)

BASE = {
    "model": {"n_layer": 2, "n_head": 4, "d_model": 64, "vocab_size": 256, "context": 32, "init_std": 0.1},
    "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "targets": "all"},
    "optim": {"lr": 3.0e-3, "warmup_steps": 2},
    "train": {"steps": 10, "batch_size": 8, "micro_batch": 2, "seq_len": 32, "log_every": 1, "seed": 7},
    "checkpoint": {"every": 0, "keep_last": 3, "resume": "auto"},
}

# Layouts differ in the order fp32 sums are taken: the row-parallel all-reduce adds TP
# partial products, the DP all-reduce adds per-replica gradients, so each result moves by
# a few ulps (~1e-7 relative) per reduction. Over 6 steps of a 2-layer model that stays
# near 1e-8 relative in the loss and 1e-9 absolute in parameters of size ~0.1 (seen: 5e-8,
# 2e-9). The bounds below leave a factor of ~100 to 1000 over that, while one misplaced
# slice or a lost optimizer step moves the loss by >1e-3 and parameters by ~lr = 3e-3.
CROSS_LAYOUT_LOSS_RTOL = 1e-5
CROSS_LAYOUT_PARAM_ATOL = 1e-5


class Runner:
    def __init__(self, args):
        self.bin, self.work, self.data = args.bin, os.path.abspath(args.work), os.path.abspath(args.data)
        self.ranks = {}  # yaml path -> tp * dp
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)

    def out(self, name):
        return os.path.join(self.work, name)

    def config(self, name, tp, dp, **overrides):
        """Writes <work>/<name>.yaml: BASE with `overrides` ({section: {key: value}}) merged in."""
        cfg = {section: dict(keys) for section, keys in BASE.items()}
        cfg["data"] = {"train": self.data}
        cfg["parallel"] = {"tp": tp, "dp": dp}
        cfg["output"] = {"dir": self.out(name)}
        for section, keys in overrides.items():
            if keys is not None:  # section=None: nothing to add
                cfg.setdefault(section, {}).update(keys)
        path = self.out(name) + ".yaml"
        self.ranks[path] = tp * dp
        with open(path, "w") as f:
            for section, keys in cfg.items():
                f.write(f"{section}:\n")
                for key, value in keys.items():
                    f.write(f"  {key}: {yaml_value(value)}\n")
        return path

    def command(self, yaml):
        return ["mpirun", "-np", str(self.ranks[yaml]), "--oversubscribe", self.bin, "--yaml", yaml]

    def run(self, yaml, expect_rc=0):
        p = subprocess.run(self.command(yaml), capture_output=True, text=True, timeout=120)
        if expect_rc is not None and p.returncode != expect_rc:
            fail(f"{' '.join(self.command(yaml))} exited {p.returncode}, expected {expect_rc}\n"
                 f"--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
        return p

    def start(self, yaml):
        # Its own session, so that a kill of this job can never reach the test itself.
        return subprocess.Popen(self.command(yaml), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)


def yaml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def ckpt(out_dir, step):
    return os.path.join(out_dir, "checkpoints", f"step_{step:08d}.h5")


def train_losses(out_dir):
    """{step: loss} from metrics.jsonl; the last record of a step wins."""
    losses = {}
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "train":
                losses[rec["step"]] = rec["loss"]
    return losses


def tensors(path, groups=("adapter", "optimizer/m", "optimizer/v")):
    with h5py.File(path, "r") as f:
        return {f"{g}/{name}": f[g][name][()] for g in groups if g in f for name in f[g]}


def same_losses(got, want, steps, what):
    missing = [s for s in steps if s not in got]
    check(not missing, f"{what}: no loss logged for steps {missing}")
    diff = [(s, got[s], want[s]) for s in steps if got[s] != want[s]]
    check(not diff, f"{what}: losses differ from the straight run (step, got, want): {diff}")


def same_tensors(got_path, want_path, what, groups=("adapter", "optimizer/m", "optimizer/v")):
    got, want = tensors(got_path, groups), tensors(want_path, groups)
    check(sorted(got) == sorted(want), f"{what}: datasets differ: {sorted(set(got) ^ set(want))}")
    diff = [k for k in want if got[k].tobytes() != want[k].tobytes()]
    check(not diff, f"{what}: tensors not bit-identical to the straight run: {diff[:5]}")


def checkpoint_files(out_dir):
    d = os.path.join(out_dir, "checkpoints")
    names = os.listdir(d) if os.path.isdir(d) else []
    complete = sorted(int(n[5:13]) for n in names if n.startswith("step_") and n.endswith(".h5"))
    partial = [n for n in names if n.endswith(".tmp")]
    return complete, partial


def rank_pids(popen, ranks):
    """{world rank: pid} of the `ranks` processes mpirun starts (waits until all exist)."""
    end = time.time() + 30
    while True:
        pids = {}
        for task in os.listdir(f"/proc/{popen.pid}/task"):
            with open(f"/proc/{popen.pid}/task/{task}/children") as f:
                for pid in map(int, f.read().split()):
                    try:
                        with open(f"/proc/{pid}/environ", "rb") as e:
                            env = dict(kv.split(b"=", 1) for kv in e.read().split(b"\0") if b"=" in kv)
                        pids[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
                    except (OSError, KeyError):
                        pass
        if len(pids) == ranks or time.time() > end:
            return pids
        time.sleep(0.001)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_job(popen, ranks):
    """kill -9 of the whole job: every rank (mpirun gives each its own process group) and
    mpirun itself; returns once none of them runs any more."""
    pids = list(rank_pids(popen, ranks).values()) if popen.poll() is None else []
    for pid in pids + [popen.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    popen.communicate()
    while any(alive(pid) for pid in pids):
        time.sleep(0.01)


def sleep_while_running(popen, seconds):
    end = time.time() + seconds
    while time.time() < end and popen.poll() is None:
        time.sleep(0.005)


def wait_for(cond, popen, timeout=60, poll=0.0005):
    """True once cond() holds, False if the job ended first."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        if popen.poll() is not None:
            return False
        time.sleep(poll)
    fail("timed out waiting for the run")


def logged_steps(out_dir):
    try:
        return max(train_losses(out_dir), default=0)
    except (OSError, ValueError):  # not there yet, or a line being written
        return 0


# --- the cases -------------------------------------------------------------------------------

def same_layout(r, model=None, what="fp32"):
    """Resume at tp 2 x dp 2 from step 4 of 10: losses, adapter and AdamW moments bit-identical.
    `model` adds model keys (same_layout_bf16: the frozen matrices in bf16 change nothing)."""
    straight = r.config("straight", 2, 2, checkpoint={"every": 4, "keep_last": 5}, model=model)
    p = r.run(straight)
    if model and model.get("dtype") in ("bf16", "nf4"):
        check(f"model: {model['dtype']} frozen weights" in p.stdout, f"no {model['dtype']} model line:\n{p.stdout}")
    resumed = r.config("resumed", 2, 2, checkpoint={"resume": ckpt(r.out("straight"), 4)}, model=model)
    p = r.run(resumed)
    check(f"resumed from {ckpt(r.out('straight'), 4)} at step 4" in p.stdout, f"no resume line:\n{p.stdout}")
    got, want = train_losses(r.out("resumed")), train_losses(r.out("straight"))
    check(sorted(got) == list(range(5, 11)), f"resumed run logged steps {sorted(got)}, expected 5..10")
    same_losses(got, want, range(5, 11), f"resume at tp=2 x dp=2 ({what})")
    same_tensors(ckpt(r.out("resumed"), 10), ckpt(r.out("straight"), 10), f"final checkpoint ({what})")
    same_tensors(r.out("resumed/adapter.h5"), r.out("straight/adapter.h5"), "adapter.h5", groups=("adapter",))
    print(f"same layout, {what}: steps 5..10 losses, final adapter and AdamW moments bit-identical")


def same_layout_bf16(r):
    same_layout(r, model={"dtype": "bf16"}, what="model.dtype bf16")


def same_layout_nf4(r):
    nf4 = {"dtype": "nf4", "d_model": 128}
    same_layout(r, model=nf4, what="model.dtype nf4")
    p = r.run(r.config("cross", 1, 2, checkpoint={"resume": ckpt(r.out("straight"), 4)}, model=nf4))
    check("(written at tp=2 dp=2)" in p.stdout, f"no cross-layout resume line:\n{p.stdout}")
    got, want = train_losses(r.out("cross")), train_losses(r.out("straight"))
    worst = max(abs(got[s] - want[s]) / abs(want[s]) for s in got)
    check(worst <= CROSS_LAYOUT_LOSS_RTOL, f"nf4 cross layout: loss relative difference {worst:.3g}")
    # The adapter is fp32 whatever stores the base: an fp32 run may go on from it, and says so.
    p = r.run(r.config("as_fp32", 2, 1, checkpoint={"resume": ckpt(r.out("straight"), 4)}, model={"d_model": 128}))
    check("changed since that checkpoint: model.dtype nf4 in the checkpoint, fp32 in this run" in p.stdout,
          f"an fp32 config resuming an nf4 checkpoint: expected the change named:\n{p.stdout}")
    print(f"nf4: cross layout tp2xdp2 -> tp1xdp2 loss rel diff <= {worst:.2g}; an fp32 resume names the dtype change")


LLAMA = {"arch": "llama", "n_kv_head": 2, "head_dim": 24, "ffn": 160, "qkv_bias": True, "tie_embeddings": False,
         "rope_factor": 8, "rope_original_context": 16}


def llama(r):
    same_layout(r, model=LLAMA, what="llama")
    resumed = r.config("cross", 1, 2, checkpoint={"resume": ckpt(r.out("straight"), 4)}, model=LLAMA)
    p = r.run(resumed)
    check("(written at tp=2 dp=2)" in p.stdout, f"no cross-layout resume line:\n{p.stdout}")
    got, want = train_losses(r.out("cross")), train_losses(r.out("straight"))
    worst = max(abs(got[s] - want[s]) / abs(want[s]) for s in got)
    check(worst <= CROSS_LAYOUT_LOSS_RTOL, f"llama cross layout: loss relative difference {worst:.3g}")
    p = r.run(r.config("as_gpt", 2, 1, checkpoint={"resume": ckpt(r.out("straight"), 4)}), expect_rc=3)
    check("model shape differs" in p.stderr and "arch llama in the checkpoint, gpt in this run" in p.stderr,
          f"a GPT config resuming a Llama checkpoint: expected the arch named:\n{p.stderr}")
    print(f"llama: cross layout tp2xdp2 -> tp1xdp2 loss rel diff <= {worst:.2g}; a GPT config is refused naming the arch")


def cross_layout(r):
    straight = r.config("straight", 1, 2, checkpoint={"every": 4, "keep_last": 5})
    r.run(straight)
    resumed = r.config("resumed", 2, 1, checkpoint={"resume": ckpt(r.out("straight"), 4)})
    p = r.run(resumed)
    check("(written at tp=1 dp=2)" in p.stdout, f"no resume line:\n{p.stdout}")
    got, want = train_losses(r.out("resumed")), train_losses(r.out("straight"))
    check(sorted(got) == list(range(5, 11)), f"resumed run logged steps {sorted(got)}")
    worst_loss = max(abs(got[s] - want[s]) / abs(want[s]) for s in got)
    check(worst_loss <= CROSS_LAYOUT_LOSS_RTOL, f"loss relative difference {worst_loss:.3g} > {CROSS_LAYOUT_LOSS_RTOL}")
    a, b = tensors(r.out("resumed/adapter.h5"), ("adapter",)), tensors(r.out("straight/adapter.h5"), ("adapter",))
    worst_param = max(float(np.max(np.abs(a[k] - b[k]))) for k in b)
    check(worst_param <= CROSS_LAYOUT_PARAM_ATOL, f"adapter max |difference| {worst_param:.3g} > {CROSS_LAYOUT_PARAM_ATOL}")
    print(f"cross layout tp1xdp2 -> tp2xdp1: loss rel diff <= {worst_loss:.2g}, adapter abs diff <= {worst_param:.2g}")


def full_finetuning(r):
    full = {"enabled": False}
    groups = ("model", "optimizer/m", "optimizer/v")
    straight = r.config("straight", 2, 2, checkpoint={"every": 4, "keep_last": 5}, lora=full)
    p = r.run(straight)
    check("full fine-tuning" in p.stdout and "model.h5" in p.stdout, f"no full fine-tuning lines:\n{p.stdout}")
    resumed = r.config("resumed", 2, 2, checkpoint={"resume": ckpt(r.out("straight"), 4)}, lora=full)
    p = r.run(resumed)
    check(f"resumed from {ckpt(r.out('straight'), 4)} at step 4" in p.stdout, f"no resume line:\n{p.stdout}")
    got, want = train_losses(r.out("resumed")), train_losses(r.out("straight"))
    check(sorted(got) == list(range(5, 11)), f"resumed run logged steps {sorted(got)}, expected 5..10")
    same_losses(got, want, range(5, 11), "full fine-tuning resume at tp=2 x dp=2")
    same_tensors(ckpt(r.out("resumed"), 10), ckpt(r.out("straight"), 10), "final full checkpoint", groups=groups)
    def root(path):
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f}
    a, b = root(r.out("resumed/model.h5")), root(r.out("straight/model.h5"))
    check(a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in b), "model.h5 not bit-identical")
    c = tensors(ckpt(r.out("straight"), 10), ("model",))
    check(sorted(c) == sorted("model/" + k for k in b) and all(c["model/" + k].tobytes() == b[k].tobytes() for k in b),
          "model.h5 differs from the final checkpoint's /model")
    print("full fine-tuning, same layout: steps 5..10 losses, every base tensor and AdamW moment bit-identical; "
          f"model.h5 holds the {len(b)} final tensors")
    straight12 = r.config("straight12", 1, 2, checkpoint={"every": 4}, lora=full)
    r.run(straight12)
    # The fine-tuned model as a Hugging Face folder: export --merged of a config reading model.h5.
    hf_yaml = r.config("hf_export", 1, 1, lora=full, model={"init": "file", "weights_file": r.out("straight/model.h5")})
    hf = r.out("straight_hf")
    p = subprocess.run([r.bin, "export", "--yaml", hf_yaml, "--merged", hf], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0 and "full fine-tuning: no adapter" in p.stdout, f"export --merged:\n{p.stdout}{p.stderr}")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
    import gpt2_folder
    _, st = gpt2_folder.read_safetensors(os.path.join(hf, "model.safetensors"))
    modules = {"attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
    bad = []
    for k, v in b.items():
        name, conv1d = k, False
        for ours, theirs in modules.items():
            if f".{ours}." in k:
                name, conv1d = k.replace(f".{ours}.", f".{theirs}."), k.endswith(".weight")
        hf_name = "transformer." + (name + ".weight" if name in ("wte", "wpe") else name)
        got = st[hf_name][1]
        want_v = v.T if conv1d else v.reshape(got.shape)  # Conv1D stores [in, out]
        if not np.array_equal(got.astype(np.float32), want_v):
            bad.append(k)
    check(not bad, f"the HF folder differs from model.h5 in {bad[:5]}")
    for args, needle in ((["--adapter", r.out("straight/model.h5"), "--merged", r.out("x")], "there is no adapter"),
                         (["--peft", r.out("y")], "there is no adapter")):
        p = subprocess.run([r.bin, "export", "--yaml", hf_yaml] + args, capture_output=True, text=True, timeout=120)
        check(p.returncode == 2 and needle in p.stderr, f"export {args}: exit {p.returncode}\n{p.stderr}")
    print(f"full fine-tuning: export --merged writes model.h5's {len(b)} tensors as an HF GPT-2 folder, exactly")
    cross = r.config("cross", 2, 1, checkpoint={"resume": ckpt(r.out("straight12"), 4)}, lora=full)
    p = r.run(cross)
    check("(written at tp=1 dp=2)" in p.stdout, f"no resume line:\n{p.stdout}")
    got, want = train_losses(r.out("cross")), train_losses(r.out("straight12"))
    worst = max(abs(got[s] - want[s]) / abs(want[s]) for s in got)
    check(sorted(got) == list(range(5, 11)) and worst <= CROSS_LAYOUT_LOSS_RTOL, f"cross-layout losses: {worst:.3g}")
    print(f"full fine-tuning, tp1xdp2 -> tp2xdp1: loss rel diff <= {worst:.2g}")
    lora_ckpt = r.config("lora", 1, 1, checkpoint={"every": 2}, train={"steps": 2})
    r.run(lora_ckpt)
    for name, resume, extra, needle in (
            ("full_from_lora", ckpt(r.out("lora"), 2), full, "of a LoRA run (/adapter), but this run has lora.enabled: false"),
            ("lora_from_full", ckpt(r.out("straight"), 4), None,
             "of a full fine-tuning run (/model), but this run has lora.enabled: true")):
        p = r.run(r.config(name, 1, 1, checkpoint={"resume": resume}, lora=extra), expect_rc=3)
        check(needle in p.stderr, f"{name}: {p.stderr}")
        print(f"refused (exit 3): {p.stderr.strip().splitlines()[0]}")


def kill9(r):
    steps = 24
    # r=32 makes each checkpoint ~1.8 MB, so a write lasts long enough to be hit.
    big = {"train": {"steps": steps}, "lora": {"r": 32}}
    r.run(r.config("straight", 2, 1, **big))
    want = train_losses(r.out("straight"))
    rng = random.Random(1234)
    mid_write = 0
    for attempt in range(8):
        name = f"killed{attempt}"
        yaml = r.config(name, 2, 1, checkpoint={"every": 1, "keep_last": 3}, **big)
        job = r.start(yaml)
        if attempt % 4 == 3:  # anywhere: compute, collective, write or prune
            delay = rng.uniform(0.3, 1.5)
            sleep_while_running(job, delay)
            instant = f"after {delay:.2f} s"
        else:  # just after the k-th checkpoint write began
            k = rng.randint(1, steps - 4)
            seen = set()

            def kth_write_started():
                seen.update(checkpoint_files(r.out(name))[1])
                return len(seen) >= k
            wait_for(kth_write_started, job)
            time.sleep(rng.uniform(0, 0.003))
            instant = f"during write #{k}"
        kill_job(job, 2)
        complete, partial = checkpoint_files(r.out(name))
        mid_write += bool(partial)
        newest = complete[-1] if complete else None

        p = r.run(yaml)  # resume: auto
        check("skipping checkpoint" not in p.stderr, f"{name}: a complete checkpoint was rejected:\n{p.stderr}")
        if newest:
            check(f"resumed from {ckpt(r.out(name), newest)} at step {newest}" in p.stdout,
                  f"{name}: did not resume from the newest complete checkpoint {newest}:\n{p.stdout}")
        same_losses(train_losses(r.out(name)), want, range(1, steps + 1), f"{name} (killed {instant})")
        same_tensors(r.out(f"{name}/adapter.h5"), r.out("straight/adapter.h5"), name, groups=("adapter",))
        print(f"{name}: killed {instant}; complete checkpoints {complete}, partial {partial}; "
              f"resumed from {newest or 'scratch'}: bit-identical", flush=True)
    check(mid_write >= 2, f"only {mid_write} of the kills landed inside a checkpoint write")
    print(f"kill -9: 8 kills, {mid_write} inside a checkpoint write; every resume bit-identical")


def flip(path, offset, mask):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def attribute_header_offset(path, name):
    """Offset of attribute `name`'s header message: its name is stored right in it."""
    with open(path, "rb") as f:
        data = f.read()
    at = data.find(name.encode() + b"\0")
    check(at > 0, f"{path}: attribute name {name} not found in the file")
    return at


def fallback(r):
    r.run(r.config("straight", 1, 2, checkpoint={"every": 2, "keep_last": 5}))
    os.makedirs(r.out("requeued/checkpoints"))
    for step in (2, 4, 6, 8, 10):
        shutil.copy(ckpt(r.out("straight"), step), ckpt(r.out("requeued"), step))
    # Newest first: each damaged in another part of the file, each one skipped with its reason.
    with h5py.File(ckpt(r.out("requeued"), 6), "r") as f:
        tensor_offset = f["adapter/h.1.lora.q.B"].id.get_offset()
    damage = {
        10: (attribute_header_offset(ckpt(r.out("requeued"), 10), "adam_step") - 4, 0x01, "checksum mismatch"),
        8: (512 + 20, 0x04, "checksum mismatch"),  # the HDF5 superblock, after the 512-byte seal
        6: (tensor_offset + 6, 0x10, "checksum mismatch"),
    }
    for step, (offset, mask, _) in damage.items():
        flip(ckpt(r.out("requeued"), step), offset, mask)
    p = r.run(r.config("requeued", 1, 2))
    for step, (_, _, why) in damage.items():
        bad = ckpt(r.out("requeued"), step)
        check(f"lora_dist: warning: skipping checkpoint {bad}: {why}" in p.stderr,
              f"the damaged step {step} checkpoint was not reported:\n{p.stderr}")
    check(f"resumed from {ckpt(r.out('requeued'), 4)} at step 4" in p.stdout, f"did not fall back to step 4:\n{p.stdout}")
    same_losses(train_losses(r.out("requeued")), train_losses(r.out("straight")), range(5, 11), "fallback")
    same_tensors(r.out("requeued/adapter.h5"), r.out("straight/adapter.h5"), "fallback", groups=("adapter",))
    print("fallback: steps 10, 8, 6 damaged (attribute header, superblock, tensor) reported and skipped; "
          "resumed from step 4 bit-identically")


def refused(r):
    r.run(r.config("straight", 2, 1, train={"steps": 2}))
    good = ckpt(r.out("straight"), 2)
    truncated = r.out("truncated.h5")
    shutil.copy(good, truncated)
    os.truncate(truncated, os.path.getsize(good) // 2)
    unsealed = r.out("unsealed.h5")  # as h5py writes it: what a v1 checkpoint looks like to the seal
    with h5py.File(unsealed, "w") as f:
        f.create_group("state").attrs["format"] = "lora_dist checkpoint v1"
    cases = [
        ("other_r", good, {"lora": {"r": 8}}, "LoRA rank r differs: r 4 in the checkpoint, 8 in this run"),
        ("other_base", good, {"model": {"init_seed": 99}}, "base model fingerprint differs"),
        ("other_shape", good, {"model": {"n_layer": 3}}, "model shape differs: n_layer 2 in the checkpoint, 3 in this run"),
        ("truncated", truncated, {}, f"truncated or extended: the seal records {os.path.getsize(good)} bytes"),
        ("unsealed", unsealed, {}, "no lora_dist seal (LDCKSUM1) at the start of the file"),
    ]
    for name, path, overrides, expect in cases:
        overrides = dict(overrides, checkpoint={"resume": path})
        p = r.run(r.config(name, 2, 1, **overrides), expect_rc=3)  # kExitBadInput (io/input_error.h)
        line = f"lora_dist: checkpoint error: {path}: "
        check(p.stderr.count(line) == 1 and expect in p.stderr,
              f"{name}: expected one '{line}...{expect}' on stderr:\n{p.stderr}")
        check("MPI_ABORT" not in p.stderr, f"{name}: the job was aborted instead of exiting cleanly:\n{p.stderr}")
        print(f"refused {name}: {expect}")


def sigterm(r):
    steps = 60
    r.run(r.config("straight", 1, 2, train={"steps": steps}))
    want = train_losses(r.out("straight"))
    variants = [("every_rank_twice", signal.SIGTERM, "all"), ("one_rank_usr1", signal.SIGUSR1, 1)]
    for name, signo, target in variants:
        yaml = r.config(name, 1, 2, train={"steps": steps})
        job = r.start(yaml)
        check(wait_for(lambda: logged_steps(r.out(name)) >= 5, job), f"{name}: the run ended before step 5")
        pids = rank_pids(job, 2)
        for _ in range(2 if target == "all" else 1):
            for rank, pid in pids.items():
                if target == "all" or rank == target:
                    os.kill(pid, signo)
        stdout, stderr = job.communicate(timeout=120)
        check(job.returncode == 75, f"{name}: exit status {job.returncode}, expected 75\n{stdout}\n{stderr}")
        stopped = logged_steps(r.out(name))
        complete, _ = checkpoint_files(r.out(name))
        check(stopped < steps and complete == [stopped],
              f"{name}: stopped at step {stopped}, checkpoints {complete}")
        signame = signal.Signals(signo).name
        check(f"lora_dist: preempted by {signame} at step {stopped}; checkpoint {ckpt(r.out(name), stopped)} written; "
              f"exiting with status 75" in stdout, f"{name}: no preemption line:\n{stdout}")
        p = r.run(yaml)
        check(f"resumed from {ckpt(r.out(name), stopped)} at step {stopped}" in p.stdout, f"{name}: no resume:\n{p.stdout}")
        same_losses(train_losses(r.out(name)), want, range(1, steps + 1), name)
        same_tensors(r.out(f"{name}/adapter.h5"), r.out("straight/adapter.h5"), name, groups=("adapter",))
        print(f"{name}: {signame} at step {stopped} -> exit 75, checkpoint written, resume bit-identical")


def every_minutes(r):
    # 0.0002 minutes = 12 ms, shorter than a step: rank 0's clock asks for a save after
    # (nearly) every step, and every rank must follow it, or the job would hang.
    r.run(r.config("timed", 2, 1, checkpoint={"every": 0, "every_minutes": 0.0002, "keep_last": 100}))
    saved = [json.loads(line)["step"] for line in open(r.out("timed/metrics.jsonl")) if '"checkpoint"' in line]
    complete, _ = checkpoint_files(r.out("timed"))
    check(len(saved) >= 3 and complete == sorted(saved), f"checkpoints logged {saved}, on disk {complete}")
    print(f"every_minutes: saved at steps {saved}")


CASES = {f.__name__: f for f in (same_layout, same_layout_bf16, same_layout_nf4, llama, cross_layout, full_finetuning, kill9, fallback, refused,
                                  every_minutes, sigterm)}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--bin", required=True, help="the lora_dist binary")
    ap.add_argument("--work", required=True, help="scratch folder (emptied first)")
    ap.add_argument("--data", required=True, help="token shard to train on")
    args = ap.parse_args()
    t0 = time.time()
    CASES[args.case](Runner(args))
    print(f"PASS {args.case} in {time.time() - t0:.1f} s")
