#!/usr/bin/env python3
"""Writes the pretraining corpus of the shipped byte-level base and the task it is fine-tuned on.

Two commands, both deterministic for a given --seed (Python 3 standard library only):

  make_base_data.py corpus --kjv kjv.txt --out-dir DIR
      DIR/corpus_train.bin, DIR/corpus_val.bin: the pretraining text, byte tokens (vocab 256),
      every byte scored. King James verses (Debian's bible-kjv, as launch/pretrain_base_bytes.sh
      extracts them) interleaved with synthetic prose that states, in plain sentences, the six
      string skills of the task for every word of a broader list than the task's:
          the word lemon backwards is nomel.      LEMON is lemon in capitals.
          banana has 3 vowels.                    the first letters of pot oak fox are pof.
  make_base_data.py tasks [--out-dir data]
      tasks_train.bin, tasks_val.bin (token shards, the loss on the answer only) and
      tasks_heldout.jsonl (the held-out records as {"task", "prompt", "completion"}), in the
      instruction format the fine-tuning teaches: "reverse: lemon\\n=> nomel\\n". The held-out
      records use only held-out words, which no training record of the task uses (the base
      has read them in its prose); the val shard is those records.

Shard format: io/token_shard.h (see make_demo_data.py's write_shard).
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_demo_data import WORDS as TASK_WORDS, write_shard  # noqa: E402  (the demo's 93 words)

# Words the base reads about besides the task's: prose covers the skills over both lists.
EXTRA_WORDS = """
ace age axe bay bow bud cab cub dew elk elm fog hay ivy jet kit mop oar pea pie
acorn amber arrow bacon berry cabin camel candy chalk daisy eagle flame honey jelly
maple olive panda peach tulip zebra
""".split()

VOWELS = set("aeiou")
TIMES = {2: "twice", 3: "three times"}
HELDOUT_EVERY = 5  # every 5th task word (in the list's order) is held out of the task's training


def split_words():
    heldout = TASK_WORDS[HELDOUT_EVERY - 1::HELDOUT_EVERY]
    train = [w for w in TASK_WORDS if w not in heldout]
    return train, heldout


def vowels(w):
    return sum(c in VOWELS for c in w)


# ---- the task, in the instruction format the fine-tuning teaches --------------------------------

def task_record(rng, words):
    """(task, prompt, answer) of one random record over `words`."""
    task = rng.choice(["reverse", "upper", "sort", "repeat", "vowels", "initials"])
    if task == "reverse":
        w = rng.choice(words)
        return task, f"reverse: {w}", w[::-1]
    if task == "upper":
        ws = rng.sample(words, rng.randint(1, 2))
        return task, f"upper: {' '.join(ws)}", " ".join(ws).upper()
    if task == "sort":
        w = rng.choice(words)
        return task, f"sort: {w}", "".join(sorted(w))
    if task == "repeat":
        w, n = rng.choice(words), rng.randint(2, 3)
        return task, f"repeat {n}: {w}", " ".join([w] * n)
    if task == "vowels":
        w = rng.choice(words)
        return task, f"vowels: {w}", str(vowels(w))
    ws = rng.sample(words, rng.randint(2, 3))
    return task, f"initials: {' '.join(ws)}", "".join(w[0] for w in ws)


def task_split(rng, words, n_records):
    tokens, mask, records = bytearray(), [], []
    for _ in range(n_records):
        task, prompt, answer = task_record(rng, words)
        p = (prompt + "\n=> ").encode("ascii")
        a = (answer + "\n").encode("ascii")
        tokens += p + a
        mask += [0] * len(p) + [1] * len(a)
        records.append({"task": task, "prompt": prompt + "\n=> ", "completion": answer})
    return bytes(tokens), mask, records


def cmd_tasks(args):
    train_words, heldout_words = split_words()
    rng = random.Random(args.seed * 2)
    tokens, mask, _ = task_split(rng, train_words, args.train_records)
    path = os.path.join(args.out_dir, "tasks_train.bin")
    write_shard(path, tokens, mask, 2)
    print(f"{path}: {len(tokens)} tokens, {sum(mask)} scored, {args.train_records} records over "
          f"{len(train_words)} words")
    rng = random.Random(args.seed * 2 + 1)
    tokens, mask, records = task_split(rng, heldout_words, args.heldout_records)
    path = os.path.join(args.out_dir, "tasks_val.bin")
    write_shard(path, tokens, mask, 2)
    print(f"{path}: {len(tokens)} tokens, {sum(mask)} scored, {len(records)} records over "
          f"{len(heldout_words)} held-out words: {' '.join(heldout_words)}")
    path = os.path.join(args.out_dir, "tasks_heldout.jsonl")
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    print(f"{path}: {len(records)} held-out records")


# ---- the pretraining prose: the same skills in other words -------------------------------------

def prose_sentence(rng, words):
    skill = rng.randrange(6)
    form = rng.randrange(2)
    if skill == 0:
        w = rng.choice(words)
        return (f"the word {w} backwards is {w[::-1]}." if form == 0 else
                f"{w} spelt backwards is {w[::-1]}.")
    if skill == 1:
        ws = " ".join(rng.sample(words, rng.randint(1, 2)))
        return f"{ws.upper()} is {ws} in capitals." if form == 0 else f"in capitals, {ws} is {ws.upper()}."
    if skill == 2:
        w = rng.choice(words)
        s = "".join(sorted(w))
        return (f"the letters of {w} in order are {s}." if form == 0 else
                f"sorted, the letters of {w} read {s}.")
    if skill == 3:
        w, n = rng.choice(words), rng.randint(2, 3)
        rep = " ".join([w] * n)
        return f"{w} said {TIMES[n]} is {rep}." if form == 0 else f"say {w} {TIMES[n]}: {rep}."
    if skill == 4:
        w = rng.choice(words)
        n = vowels(w)
        noun = "vowel" if n == 1 else "vowels"
        return f"{w} has {n} {noun}." if form == 0 else f"there {'is' if n == 1 else 'are'} {n} {noun} in {w}."
    ws = rng.sample(words, rng.randint(2, 3))
    i = "".join(w[0] for w in ws)
    return (f"the first letters of {' '.join(ws)} are {i}." if form == 0 else
            f"{' '.join(ws)} begin with the letters {i}.")


def cmd_corpus(args):
    with open(args.kjv, encoding="utf-8") as f:
        verses = [v.strip() for v in f if v.strip()]
    if not verses:
        sys.exit(f"make_base_data.py: {args.kjv}: no text")
    words = TASK_WORDS + [w for w in EXTRA_WORDS if w not in TASK_WORDS]
    rng = random.Random(args.seed)
    # Lines: every verse in order, each followed by synthetic sentences so that about
    # --prose-fraction of the bytes are prose; non-ASCII bytes of the text are dropped.
    lines, prose_bytes, kjv_bytes = [], 0, 0
    for v in verses:
        v = v.encode("ascii", "ignore").decode()
        lines.append(v)
        kjv_bytes += len(v) + 1
        while prose_bytes < kjv_bytes * args.prose_fraction / (1 - args.prose_fraction):
            s = prose_sentence(rng, words)
            lines.append(s)
            prose_bytes += len(s) + 1
        if kjv_bytes + prose_bytes >= args.max_bytes:
            break
    text = ("\n".join(lines) + "\n").encode("ascii")
    n_val = int(len(text) * args.val_fraction)
    # The held-out text is the end of the stream (whole lines), the rest trains.
    cut = text.rfind(b"\n", 0, len(text) - n_val) + 1
    for name, part in (("corpus_train.bin", text[:cut]), ("corpus_val.bin", text[cut:])):
        path = os.path.join(args.out_dir, name)
        write_shard_nomask(path, part)
        print(f"{path}: {len(part)} byte tokens")
    print(f"corpus: {kjv_bytes} bytes of King James text, {prose_bytes} of prose "
          f"({prose_bytes / (kjv_bytes + prose_bytes):.1%}) over {len(words)} words")


def write_shard_nomask(path, tokens):
    """Token shard version 1 without a mask (every token scored), uint16."""
    import struct
    header = b"LDTOKENS" + struct.pack("<IIIIQ", 1, 2, 256, 0, len(tokens))
    header += bytes(64 - len(header))
    with open(path, "wb") as f:
        f.write(header)
        f.write(struct.pack("<%dH" % len(tokens), *tokens))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus", help="the pretraining corpus shards")
    c.add_argument("--kjv", required=True, help="King James text, one verse a line, verse numbers stripped")
    c.add_argument("--out-dir", required=True)
    c.add_argument("--seed", type=int, default=2026)
    c.add_argument("--prose-fraction", type=float, default=0.75, help="share of the bytes that are prose")
    c.add_argument("--max-bytes", type=int, default=8_000_000, help="stop adding verses past this many bytes")
    c.add_argument("--val-fraction", type=float, default=0.01)
    t = sub.add_parser("tasks", help="the fine-tuning task's shards and held-out records")
    t.add_argument("--out-dir", default=here)
    t.add_argument("--seed", type=int, default=27)
    t.add_argument("--train-records", type=int, default=4000)
    t.add_argument("--heldout-records", type=int, default=240)
    args = ap.parse_args()
    if args.cmd == "corpus" and not 0 <= args.prose_fraction < 1:
        ap.error("--prose-fraction must be in [0, 1)")
    (cmd_corpus if args.cmd == "corpus" else cmd_tasks)(args)


if __name__ == "__main__":
    main()
