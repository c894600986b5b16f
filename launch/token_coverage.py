#!/usr/bin/python3
"""How many of a JSONL task's completion (and prompt) tokens a base saw in pretraining: the
share never seen and seen fewer than 10 times. A tied embedding row of a token the base never
saw was only ever pushed down; LoRA on the blocks leaves it frozen, full fine-tuning retrains
it (launch/paper_study.sh, README "The paper in small").
    token_coverage.py TOKENIZER_DIR PRETRAINING_TEXT TASK.jsonl > coverage.json
The GPT-2 BPE of tests/tokenizer/gpt2_encoder_reference.py (OpenAI's encoder.py algorithm,
token for token equal to lora_dist prepare's: tokenizer.gpt2_references)."""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tokenizer"))
import gpt2_encoder_reference as ref  # noqa: E402


def main():
    tok, text, task = sys.argv[1:4]
    enc = ref.Encoder(os.path.join(tok, "vocab.json"), os.path.join(tok, "merges.txt"))
    seen = collections.Counter()
    with open(text, encoding="utf-8") as f:
        for line in f:
            seen.update(enc.encode(line))
    out = {"pretraining_tokens": sum(seen.values()), "pretraining_distinct": len(seen)}
    examples = [json.loads(line) for line in open(task, encoding="utf-8") if line.strip()]
    for part in ("completion", "prompt"):
        counts = collections.Counter(t for e in examples for t in enc.encode(e[part]))
        total = sum(counts.values())
        out[part] = {"tokens": total, "distinct": len(counts),
                     "never_seen": sum(n for t, n in counts.items() if seen[t] == 0) / total,
                     "seen_under_10": sum(n for t, n in counts.items() if 0 < seen[t] < 10) / total,
                     "distinct_never_seen": sum(1 for t in counts if seen[t] == 0)}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
