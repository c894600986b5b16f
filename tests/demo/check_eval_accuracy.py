#!/usr/bin/python3
"""The demo's accuracy report against a recount: trains the demo (launch/examples/demo_pretrained.yaml,
LoRA on the shipped base, 4 ranks) for a few steps, asks `lora_dist generate --eval` for the base's
and the adapter's greedy answers to the first held-out records, and recounts every figure of the
--eval-out files and of the printed tables in Python from the records themselves: each record's
prompt, expected answer and task are the held-out file's, `correct` is answer == expected, and
the per-task and overall counts and accuracies are the sums. One answer is checked against a
plain `generate --prompt ... --stop '\\n'` of the same prompt; demo_report.py must print the
same accuracies; bad --eval input must be refused with the documented status, naming the file.
    check_eval_accuracy.py BINARY REPO OUTDIR
"""
import json
import os
import re
import subprocess
import sys

STEPS = 30
RECORDS = 48
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def mpirun(n, args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return subprocess.run(["mpirun", "--oversubscribe", "-np", str(n)] + args, env=env, timeout=600,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def read_out(path):
    answers, acc = [], []
    for line in open(path):
        r = json.loads(line)
        (answers if r["type"] == "answer" else acc).append(r)
    return answers, acc


def recount(name, held, out_path, stdout):
    answers, acc = read_out(out_path)
    check(len(answers) == len(held), f"{name}: {len(answers)} answer records for {len(held)} held-out records")
    check(len(acc) == 1, f"{name}: one accuracy line, last")
    acc = acc[0]
    per = {}
    for i, (a, h) in enumerate(zip(answers, held)):
        same = (a["index"] == i and a["prompt"] == h["prompt"] and a["expected"] == h["completion"]
                and a["task"] == h["task"])
        if not same:
            check(False, f"{name}: record {i} is not held-out record {i}: {a}")
        if a["correct"] != (a["answer"] == a["expected"]):
            check(False, f"{name}: record {i}: correct {a['correct']} but answer {a['answer']!r}, expected {a['expected']!r}")
        if a["stopped"] == "stop string" or "\n" in a["answer"]:
            # the stop string is cut off, and an answer holds no newline (it would have stopped there)
            check("\n" not in a["answer"], f"{name}: record {i}: answer {a['answer']!r} holds a newline")
        c = per.setdefault(a["task"], [0, 0])
        c[0] += a["answer"] == h["completion"]
        c[1] += 1
    total = [sum(c[0] for c in per.values()), sum(c[1] for c in per.values())]
    check([acc["correct"], acc["records"]] == total, f"{name}: overall {acc['correct']}/{acc['records']}, recounted {total[0]}/{total[1]}")
    check(abs(acc["accuracy"] - total[0] / total[1]) < 1e-12, f"{name}: overall accuracy {acc['accuracy']}")
    check(sorted(acc["tasks"]) == sorted(per), f"{name}: tasks {sorted(acc['tasks'])}")
    for t, (c, n) in per.items():
        got = acc["tasks"].get(t, {})
        check(got.get("correct") == c and got.get("records") == n and abs(got.get("accuracy", -1) - c / n) < 1e-12,
              f"{name}: task {t}: {got} against the recount {c}/{n}")
    # The printed table: "  task  correct  records  accuracy%", then "all".
    rows = {m.group(1): (int(m.group(2)), int(m.group(3)), float(m.group(4)))
            for m in re.finditer(r"^  (\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)%$", stdout, re.M)}
    for t, (c, n) in list(per.items()) + [("all", total)]:
        row = rows.get(t)
        check(row is not None and row[:2] == (c, n) and abs(row[2] - round(100 * c / n, 1)) < 0.051,
              f"{name}: printed row {t}: {row}, recounted {c}/{n}")
    return answers, acc


def main():
    binary, repo, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    src = open(os.path.join(repo, "launch/examples/demo_pretrained.yaml")).read()
    ex = os.path.join(repo, "launch/examples")
    cfg = src.replace("../../", os.path.join(ex, "../../"))
    cfg = re.sub(r"(?m)^  steps: .*", f"  steps: {STEPS}", cfg)
    cfg = re.sub(r"(?m)^  eval_every: .*", "  eval_every: 0", cfg)
    cfg = re.sub(r"(?m)^  dir: .*", f"  dir: {outdir}/run", cfg)
    yaml = os.path.join(outdir, "demo.yaml")
    open(yaml, "w").write(cfg)
    yaml1 = os.path.join(outdir, "demo_tp1.yaml")  # one rank, for the quick refusals
    open(yaml1, "w").write(re.sub(r"(?m)^  (tp|dp): .*", "  \\1: 1", cfg))
    held_all = [json.loads(l) for l in open(os.path.join(repo, "data/tasks_heldout.jsonl"))]
    held = held_all[:RECORDS]
    evalf = os.path.join(outdir, "heldout.jsonl")
    with open(evalf, "w") as f:
        for r in held:
            f.write(json.dumps(r) + "\n")
    check(len({r["task"] for r in held}) == 6, "the first held-out records cover the 6 tasks")

    r = mpirun(4, [binary, "--yaml", yaml])
    check(r.returncode == 0, f"training {STEPS} steps on 4 ranks: exit {r.returncode} {r.stderr[-500:]}")
    adapter = os.path.join(outdir, "run/adapter.h5")
    outs = {}
    for who, extra in (("base", []), ("adapter", ["--adapter", adapter])):
        path = os.path.join(outdir, f"answers_{who}.jsonl")
        r = mpirun(4, [binary, "generate", "--yaml", yaml, "--tokenizer", "bytes", "--eval", evalf,
                       "--eval-out", path, "--max-new-tokens", "24"] + extra)
        check(r.returncode == 0, f"generate --eval ({who}): exit {r.returncode} {r.stderr[-500:]}")
        if r.returncode:
            continue
        print(r.stdout)
        outs[who] = recount(who, held, path, r.stdout)
    if len(outs) == 2:
        differ = sum(a["answer"] != b["answer"] for a, b in zip(outs["base"][0], outs["adapter"][0]))
        check(differ > 0, f"the adapter changes {differ} of {RECORDS} answers (it is applied)")
        # One answer against a plain generate of the same prompt.
        first = outs["adapter"][0][0]
        r = mpirun(4, [binary, "generate", "--yaml", yaml, "--tokenizer", "bytes", "--adapter", adapter,
                       "--prompt", first["prompt"], "--stop", "\\n", "--max-new-tokens", "24"])
        check(r.returncode == 0 and r.stdout.rstrip("\n") == first["answer"],
              f"plain generate of record 0 gives {r.stdout!r}, --eval's answer {first['answer']!r}")
        rep = subprocess.run(["/usr/bin/python3", os.path.join(repo, "launch/demo_report.py"),
                              os.path.join(outdir, "answers_base.jsonl"), os.path.join(outdir, "answers_adapter.jsonl")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        print(rep.stdout)
        b, a = outs["base"][1], outs["adapter"][1]
        want = (f"{b['correct']:4d}/{b['records']:<4d} {100 * b['accuracy']:5.1f}%  ->"
                f"  {a['correct']:4d}/{a['records']:<4d} {100 * a['accuracy']:5.1f}%")
        check(rep.returncode == 0 and want in rep.stdout, f"demo_report.py prints the overall accuracies {want!r}")

    # Bad input: exit 3 naming the file (and line, key), or 2 for the command line.
    def bad(name, lines, status, needle, extra=()):
        path = os.path.join(outdir, name)
        if lines is not None:
            open(path, "w").write("".join(l + "\n" for l in lines))
        r = mpirun(1, [binary, "generate", "--yaml", yaml1, "--tokenizer", "bytes", "--eval", path] + list(extra))
        check(r.returncode == status and needle in r.stderr,
              f"bad input {name}: exit {r.returncode} (want {status}), stderr names {needle!r}: {r.stderr.strip()[-300:]}")
    good = json.dumps(held[0])
    bad("missing.jsonl", None, 3, "missing.jsonl: cannot read the --eval file")
    bad("notjson.jsonl", [good, "{not json"], 3, "notjson.jsonl:2: not valid JSON")
    bad("nokey.jsonl", [good, json.dumps({"prompt": "upper: cat\n=> "})], 3, 'nokey.jsonl:2: no key "completion"')
    bad("notstring.jsonl", [json.dumps({"prompt": 5, "completion": "x"})], 3, 'notstring.jsonl:1: "prompt" must be a string (got 5)')
    bad("badtask.jsonl", [json.dumps({"prompt": "a", "completion": "b", "task": 3})], 3, 'badtask.jsonl:1: "task" must be')
    bad("empty.jsonl", [""], 3, "empty.jsonl: no records")
    bad("long.jsonl", [good, json.dumps({"prompt": "x" * 80, "completion": "y"})], 3,
        'long.jsonl:2: "prompt": the prompt is 80 tokens; model.context 64')
    bad("both.jsonl", [good], 2, "excludes", ["--prompt", "hi"])
    bad("json.jsonl", [good], 2, "--json excludes --eval", ["--json", os.path.join(outdir, "gen.json")])
    r = mpirun(1, [binary, "generate", "--yaml", yaml1, "--tokenizer", "bytes", "--prompt", "hi", "--eval-out",
                   os.path.join(outdir, "x.jsonl")])
    check(r.returncode == 2 and "--eval-out requires --eval" in r.stderr, f"--eval-out without --eval: exit {r.returncode} {r.stderr.strip()[-200:]}")
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
