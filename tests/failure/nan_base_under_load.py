#!/usr/bin/python3
"""A NaN in a row-parallel base weight at tp 2 ends every rank with exit 3, every time, while
the machine is loaded: the path that once hung under load (the HDF5 probe was a forked child
of a multi-threaded rank and could inherit a lock held by another thread; it is a fresh
process now, io/h5_probe.cpp).

Two competing processes keep both cores busy (one spins, one allocates and frees memory, as
the sanitizer build's allocator and Open MPI's threads do beside a rank), while the case runs
REPEAT times through mpirun; each run must end with exit 3 naming the file and the tensor
within LIMIT seconds (it takes about 1 s alone).

    nan_base_under_load.py LORA_DIST WORKDIR [REPEAT]
"""
import multiprocessing
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "badinput"))
from generate import MODEL, base_tensors, shard_bytes, write_h5, yaml_text  # noqa: E402

LIMIT = 30  # seconds per run; a hang is what this catches, not slowness


def spin(stop):
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2147483648


def churn(stop):
    while not stop.is_set():
        blocks = [bytearray(4096 * (1 + i % 64)) for i in range(2000)]
        del blocks


def main():
    binary, work = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(7)
    tensors = base_tensors(rng)
    tensors["h.0.attn.proj.weight"][3, 15] = np.nan  # row-parallel at tp 2: in rank 1's half of the input columns
    base = os.path.join(work, "base.h5")
    write_h5(base, tensors)
    shard = os.path.join(work, "train.bin")
    with open(shard, "wb") as f:
        f.write(shard_bytes(rng.integers(0, MODEL["vocab_size"], 256).tolist(), MODEL["vocab_size"]))
    cfg = {"model": dict(MODEL, init="file", weights_file=base), "lora": {"r": 2, "alpha": 4},
           "data": {"train": shard}, "parallel": {"tp": 2, "dp": 1, "timeout_s": 20},
           "train": {"steps": 2, "batch_size": 2, "micro_batch": 1, "seq_len": 8, "threads": 1},
           "output": {"dir": os.path.join(work, "out")}}
    yaml = os.path.join(work, "run.yaml")
    with open(yaml, "w") as f:
        f.write(yaml_text(cfg))

    stop = multiprocessing.Event()
    load = [multiprocessing.Process(target=spin, args=(stop,)), multiprocessing.Process(target=churn, args=(stop,))]
    for p in load:
        p.start()
    failures, times = [], []
    try:
        for i in range(repeat):
            start = time.monotonic()
            try:
                run = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "--allow-run-as-root", binary, "--yaml", yaml],
                                     capture_output=True, text=True, timeout=LIMIT)
            except subprocess.TimeoutExpired:
                failures.append(f"run {i}: still running after {LIMIT} s (a hang)")
                subprocess.run(["pkill", "-9", "-f", yaml])
                continue
            times.append(time.monotonic() - start)
            out = run.stdout + run.stderr
            if run.returncode != 3 or "base.h5" not in out or "h.0.attn.proj.weight" not in out:
                failures.append(f"run {i}: exit {run.returncode}, output:\n{out[-1500:]}")
    finally:
        stop.set()
        for p in load:
            p.join()
    for f in failures:
        print("FAIL", f)
    if times:
        print(f"{len(times)} of {repeat} runs ended; {max(times):.1f} s the longest, {sum(times) / len(times):.1f} s on average "
              f"(2 competing processes)")
    print(f"nan_base_under_load: {repeat - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
