#!/usr/bin/env python3
"""Writes the demo instruction-following dataset: data/demo_train.bin, data/demo_val.bin.

Byte-level tokens (vocab 256, one token per byte). Each record is a short
prompt and its answer, e.g.

    reverse: lemon
    => nomel

Only the answer bytes and the newline ending the record are scored (mask 1); the
prompt, including "=> ", is masked out (0). Python 3 standard library only, and
deterministic: the same --seed gives byte-identical files.
Shard format: see io/token_shard.h (a 64-byte "LDTOKENS" header, tokens, mask).
"""
import argparse
import json
import os
import random
import struct

WORDS = """
ant ape arm art bag bat bed bee box boy bus cap car cat cow cup day dog ear egg
eye fan fig fox gem hat hen ice ink jam jar key kid leg lip map mud net nut oak
owl pan pen pig pot rat red rug sea sky sun tea toe top toy van web wig yak zoo
apple beach bread chair cloud dream earth field grape horse house juice lemon
light melon money mouse music night ocean paper plant river robot shirt snake
stone sugar table tiger train water whale
""".split()

VOWELS = set("aeiou")
MAX_RECORD_BYTES = 60   # the demo model's context is 64 tokens

# Each task maps a random generator to (prompt, answer); a record is
# prompt + "\n=> " + answer + "\n".


def task_reverse(rng):
    word = rng.choice(WORDS)
    return f"reverse: {word}", word[::-1]


def task_upper(rng):
    words = rng.sample(WORDS, rng.randint(1, 3))
    return f"upper: {' '.join(words)}", " ".join(words).upper()


def task_sort(rng):
    word = rng.choice(WORDS)
    return f"sort: {word}", "".join(sorted(word))


def task_repeat(rng):
    word, n = rng.choice(WORDS), rng.randint(2, 3)
    return f"repeat {n}: {word}", " ".join([word] * n)


def task_vowels(rng):
    word = rng.choice(WORDS)
    return f"vowels: {word}", str(sum(c in VOWELS for c in word))


def task_initials(rng):
    words = rng.sample(WORDS, rng.randint(2, 4))
    return f"initials: {' '.join(words)}", "".join(w[0] for w in words)


TASKS = [task_reverse, task_upper, task_sort, task_repeat, task_vowels, task_initials]


def make_record(rng):
    """Returns (bytes, mask) for one random record."""
    prompt, answer = rng.choice(TASKS)(rng)
    prompt_bytes = (prompt + "\n=> ").encode("ascii")
    answer_bytes = (answer + "\n").encode("ascii")
    record = prompt_bytes + answer_bytes
    assert len(record) <= MAX_RECORD_BYTES, record
    return record, [0] * len(prompt_bytes) + [1] * len(answer_bytes)


def make_split(rng, min_tokens):
    """Whole records until at least min_tokens bytes."""
    tokens, mask = bytearray(), []
    while len(tokens) < min_tokens:
        record, record_mask = make_record(rng)
        tokens += record
        mask += record_mask
    return bytes(tokens), mask


def write_shard(path, tokens, mask, token_bytes, vocab_size=256):
    """Token shard version 1, with a loss mask (flags bit 0)."""
    header = b"LDTOKENS" + struct.pack("<IIIIQ", 1, token_bytes, vocab_size, 1, len(tokens))
    header += bytes(64 - len(header))
    fmt = {2: "<%dH", 4: "<%dI"}[token_bytes] % len(tokens)
    with open(path, "wb") as f:
        f.write(header)
        f.write(struct.pack(fmt, *tokens))
        f.write(bytes(mask))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out-dir", default=here)
    ap.add_argument("--train-tokens", type=int, default=83_000)
    ap.add_argument("--val-tokens", type=int, default=5_000)
    ap.add_argument("--jsonl", type=int, default=2000,
                    help="examples in demo_tasks.jsonl, the same tasks as prompt/completion pairs for "
                         "`lora_dist prepare` (0: do not write it)")
    ap.add_argument("--chat", type=int, default=600,
                    help="examples in demo_chat.jsonl, the same tasks as chat conversations (a system, a user "
                         "and an assistant message) for a model folder's chat template (0: do not write it)")
    args = ap.parse_args()

    # Train and val draw from separate generators, so changing one size leaves
    # the other split unchanged. Train is stored as uint16 and val as uint32 so
    # the demo exercises both token widths.
    splits = [("demo_train.bin", 0, args.train_tokens, 2),
              ("demo_val.bin", 1, args.val_tokens, 4)]
    for name, stream, min_tokens, token_bytes in splits:
        rng = random.Random(args.seed * 2 + stream)
        tokens, mask = make_split(rng, min_tokens)
        path = os.path.join(args.out_dir, name)
        write_shard(path, tokens, mask, token_bytes)
        print(f"{path}: {len(tokens)} tokens, {sum(mask)} scored, "
              f"uint{8 * token_bytes}, {os.path.getsize(path)} bytes")
    if args.jsonl:
        # A third generator: the shards above stay byte for byte what they were. The completion
        # has no newline: prepare ends each example with <|endoftext|>.
        rng = random.Random(args.seed * 2 + 2)
        path = os.path.join(args.out_dir, "demo_tasks.jsonl")
        with open(path, "w") as f:
            for _ in range(args.jsonl):
                prompt, answer = rng.choice(TASKS)(rng)
                f.write(json.dumps({"prompt": prompt + "\n=> ", "completion": answer}) + "\n")
        print(f"{path}: {args.jsonl} prompt/completion examples, {os.path.getsize(path)} bytes")
    if args.chat:
        # A fourth generator, for the same reason. prepare renders each with the folder's chat
        # template and scores the assistant's answer (and its end-of-turn token) only.
        rng = random.Random(args.seed * 2 + 3)
        path = os.path.join(args.out_dir, "demo_chat.jsonl")
        with open(path, "w") as f:
            for _ in range(args.chat):
                prompt, answer = rng.choice(TASKS)(rng)
                messages = [{"role": "system", "content": "Apply the task to the words. Answer with the result only."},
                            {"role": "user", "content": prompt},
                            {"role": "assistant", "content": answer}]
                f.write(json.dumps({"messages": messages}) + "\n")
        print(f"{path}: {args.chat} chat conversations, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
