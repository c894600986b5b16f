#!/usr/bin/env python3
"""Runs the bad-input cases of generate.py against lora_dist and judges each outcome.

    run_suite.py --bin build-asan/lora_dist [--perturb-bin build/lora_dist] --work DIR
                 [--only CLASS[,CLASS]] [--jobs 2] [--seed 8] [--timeout 60] [--name SUBSTR]

--bin is the sanitizer build (LORA_SANITIZE=ON); every case runs on it. Cases marked
heap-sensitive (HDF5 base files, checkpoints, adapters) run a second time on --perturb-bin,
a plain Release build, with MALLOC_PERTURB_ (165 and 90 alternately), which has no effect
under ASan but makes a read of freed or uninitialised heap memory visible in Release.
Fixtures are made with --perturb-bin when given (faster), else with --bin.

Each run gets its own process group and a timeout; a run that outlives it is killed with
everything it started (mpirun's ranks included). Outcomes:

  ok               as expected
  crash            killed by a signal, exit status >= 128, a sanitizer report
                   ("ERROR: AddressSanitizer", "runtime error:", ...) or std::bad_alloc
  hang             still running at the timeout
  wrongly_accepted exit 0 where the input must be refused
  wrongly_refused  non-zero where the input must be accepted
  wrong_status     refused, but with an exit status outside the allowed set (0 success,
                   1 internal error, 2 config / command line, 3 unusable input file,
                   4 non-finite loss, 75 preempted)
  unclear          right exit status, but the output lacks "lora_dist:" or the file / key /
                   tensor the case names

Prints a table of outcomes by class, every failure with its command and the last lines
of its output, and the line `badinput: N passed, M failed`; exits 1 on any failure.
Results also go to DIR/results.json.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate  # noqa: E402

SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|AddressSanitizer:DEADLYSIGNAL|"
                       r"runtime error:|SUMMARY: UndefinedBehaviorSanitizer|ERROR: UndefinedBehaviorSanitizer")
SIGNALLED = re.compile(r"exited on signal|Segmentation fault|core dumped|std::bad_alloc|terminate called")
OUTCOMES = ["ok", "crash", "hang", "wrongly_accepted", "wrongly_refused", "wrong_status", "unclear"]
CLASSES = ["yaml", "shard", "base", "hf", "checkpoint", "adapter", "cli"]

BASE_ENV = {
    "OMP_NUM_THREADS": "1",
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    # Open MPI leaks by design; an allocation beyond 2 GiB or an RSS beyond 3 GiB in a
    # model of 16 features is a finding (a memory need the config check should refuse),
    # reported by ASan instead of taking the shared machine's memory.
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:max_allocation_size_mb=2048:hard_rss_limit_mb=3072:"
                    "detect_stack_use_after_return=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
# A binary without ASan has no allocation guard: an address-space limit stands in for it.
RELEASE_AS_LIMIT = 4 << 30


def has_asan(binary):
    """True when `binary` links ASan (GCC's -fsanitize=address links libasan dynamically)."""
    try:
        p = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30)
        return "libasan" in p.stdout
    except (OSError, subprocess.SubprocessError):
        return False


def descendants(pid):
    kids = collections.defaultdict(list)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids[ppid].append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(proc):
    """SIGKILL to the run's process group and to every descendant (mpirun puts ranks in
    process groups of their own)."""
    pids = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_one(case, binary, extra_env, timeout, as_limit):
    argv = [binary if a == "{bin}" else a for a in case["argv"]]
    env = dict(os.environ)
    env.update(BASE_ENV)
    env.update(case.get("env", {}))
    env.update(extra_env)

    def limit():
        if as_limit:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    t0 = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, preexec_fn=limit)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=case.get("timeout", timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc)
        out, _ = proc.communicate()
    # Anything the run left behind (an orphaned rank) goes too.
    for pid in descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    text = out.decode("utf-8", "replace")
    return {"rc": proc.returncode, "timed_out": timed_out, "out": text, "seconds": round(time.time() - t0, 2),
            "argv": argv, "env": extra_env}


def judge(case, r, timeout):
    rc, out = r["rc"], r["out"]
    if r["timed_out"]:
        return "hang", f"still running after {case.get('timeout', timeout)} s, killed"
    m = SANITIZER.search(out) or SIGNALLED.search(out)
    if rc < 0 or rc >= 128 or m:
        why = f"signal {-rc}" if rc < 0 else f"exit {rc}"
        return "crash", why + (f", '{m.group(0)}' in the output" if m else "")
    if rc == 0:
        if case["expect"] == "reject":
            return "wrongly_accepted", f"exit 0, expected one of {case['rc']}"
        missing = [n for n in case.get("accept_names", []) if n not in out]
        return ("ok", "exit 0") if not missing else ("unclear", f"exit 0; the output lacks {missing}")
    if case["expect"] == "accept":
        return "wrongly_refused", f"exit {rc}, expected 0"
    missing = [n for n in ["lora_dist:"] + case["names"] if n not in out]
    named = "" if not missing else f"; the output lacks {missing}"
    if rc not in case["rc"]:
        return "wrong_status", f"exit {rc}, expected one of {case['rc']}" + named
    return ("ok", f"exit {rc}") if not missing else ("unclear", f"exit {rc}" + named)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="lora_dist built with LORA_SANITIZE=ON")
    ap.add_argument("--perturb-bin", help="a Release lora_dist for the MALLOC_PERTURB_ pass (skipped without it)")
    ap.add_argument("--work", required=True, help="scratch folder (emptied first): WORK/asan, WORK/perturb, WORK/results.json")
    ap.add_argument("--only", action="append", default=[], help="run only these classes: " + ", ".join(CLASSES))
    ap.add_argument("--name", help="run only cases whose name contains this")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    ap.add_argument("--seed", type=int, default=8, help="generator seed (default 8)")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per run (default 60)")
    ap.add_argument("--perturb-values", default="165,90", help="MALLOC_PERTURB_ values, used in turn")
    args = ap.parse_args()
    for b in [args.bin] + ([args.perturb_bin] if args.perturb_bin else []):
        if not os.access(b, os.X_OK):
            sys.exit(f"run_suite: {b} is not an executable")
    only = {c for o in args.only for c in o.split(",") if c}
    bad = only - set(CLASSES)
    if bad:
        sys.exit(f"run_suite: unknown class {sorted(bad)} (classes: {', '.join(CLASSES)})")
    # Runs change their case folders (a resumed run writes new checkpoints), so each pass
    # gets its own freshly generated tree: WORK/asan and WORK/perturb (same seed, same cases).
    t_start = time.time()
    shutil.rmtree(args.work, ignore_errors=True)
    fixture_bin = args.perturb_bin or args.bin
    cases = generate.generate(os.path.join(args.work, "asan"), args.seed, fixture_bin)
    per_class = collections.Counter(x["cls"] for x in cases)
    print(f"generated {len(cases)} cases in {time.time() - t_start:.1f} s ("
          + ", ".join(f"{c}: {per_class[c]}" for c in CLASSES) + ")", flush=True)

    def chosen(cs):
        return [c for c in cs if (not only or c["cls"] in only) and (not args.name or args.name in c["name"])]

    cases = chosen(cases)
    bin_limit = None if has_asan(args.bin) else RELEASE_AS_LIMIT
    if bin_limit:
        print(f"run_suite: warning: {args.bin} is not an ASan build; memory errors may go unseen", flush=True)
    runs = [(c, args.bin, {}, bin_limit, "asan") for c in cases]
    if args.perturb_bin:
        perturb_limit = None if has_asan(args.perturb_bin) else RELEASE_AS_LIMIT
        values = [v for v in args.perturb_values.split(",") if v]
        heap = [c for c in chosen(generate.generate(os.path.join(args.work, "perturb"), args.seed, fixture_bin))
                if c["perturb"]]
        runs += [(c, args.perturb_bin, {"MALLOC_PERTURB_": values[i % len(values)]}, perturb_limit, "perturb")
                 for i, c in enumerate(heap)]

    results = []
    lock = threading.Lock()
    done = [0]

    def task(run):
        case, binary, env, as_limit, mode = run
        r = run_one(case, binary, env, args.timeout, as_limit)
        outcome, detail = judge(case, r, args.timeout)
        with lock:
            done[0] += 1
            if outcome != "ok":
                print(f"  [{done[0]}/{len(runs)}] {mode} {case['cls']}/{case['name']}: {outcome} ({detail})",
                      flush=True)
            elif done[0] % 25 == 0:
                print(f"  [{done[0]}/{len(runs)}] ...", flush=True)
        return dict(case=case, mode=mode, outcome=outcome, detail=detail, **r)

    t_run = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        results = list(ex.map(task, runs))
    elapsed = time.time() - t_run

    # --- report ---
    table = collections.defaultdict(collections.Counter)
    for r in results:
        table[(r["case"]["cls"], r["mode"])][r["outcome"]] += 1
    cols = OUTCOMES
    head = f"{'class':<12}{'pass':<8}{'runs':>5}" + "".join(f"{c:>17}" for c in cols)
    print("\noutcomes by class (asan: sanitizer build; perturb: Release + MALLOC_PERTURB_)")
    print(head)
    print("-" * len(head))
    for cls in CLASSES:
        for mode in ("asan", "perturb"):
            cnt = table.get((cls, mode))
            if cnt:
                print(f"{cls:<12}{mode:<8}{sum(cnt.values()):>5}" + "".join(f"{cnt[c]:>17}" for c in cols))
    total = collections.Counter()
    for cnt in table.values():
        total.update(cnt)
    print("-" * len(head))
    print(f"{'all':<20}{sum(total.values()):>5}" + "".join(f"{total[c]:>17}" for c in cols))

    failed = [r for r in results if r["outcome"] != "ok"]
    if failed:
        print(f"\nfailures ({len(failed)}), by outcome:")
    for outcome in OUTCOMES[1:]:
        for r in [x for x in failed if x["outcome"] == outcome]:
            c = r["case"]
            envs = " ".join(f"{k}={v}" for k, v in r["env"].items())
            cmd = (envs + " " if envs else "") + " ".join(shlex.quote(a) for a in r["argv"])
            expect = c["expect"] + (f" {c['rc']}" if c["expect"] != "accept" else "") + \
                (f", naming {c['names']}" if c["names"] and c["expect"] != "accept" else "") + \
                (f", on success printing {c['accept_names']}" if c.get("accept_names") else "")
            tail = "\n".join("      | " + line[:300] for line in r["out"].rstrip().splitlines()[-12:])
            print(f"\n--- {outcome}: {c['cls']}/{c['name']} [{r['mode']}]  ({c['why']})\n"
                  f"    command:  {cmd[:1500]}\n    expected: {expect}\n    got:      {r['detail']} "
                  f"after {r['seconds']} s\n    last lines of output:\n{tail}")
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "case"} | {"cls": r["case"]["cls"], "name": r["case"]["name"],
                    "expect": r["case"]["expect"], "out": r["out"][-4000:]} for r in results], f, indent=1)
    print(f"\n{len(results)} runs of {len(cases)} cases in {elapsed:.0f} s ({args.jobs} at a time); "
          f"results in {os.path.join(args.work, 'results.json')}")
    passed = len(results) - len(failed)
    print(f"badinput: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
