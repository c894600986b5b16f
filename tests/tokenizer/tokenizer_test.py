#!/usr/bin/env python3
"""lora_dist's GPT-2 tokenizer against two references (issue 12, point 2).

    tokenizer_test.py --driver build/tests/gpt2_tokenize_driver --work DIR

On a varied UTF-8 corpus (accents, CJK, emoji and ZWJ sequences, whitespace runs and
Unicode spaces, digits, contractions, "<|endoftext|>", punctuation and comma runs, random
strings from those classes) with GPT-2's real vocabulary and merges (tests/data/gpt2_bpe):
- lora_dist == OpenAI's encoder.py algorithm (gpt2_encoder_reference.py) on every string;
- lora_dist == the npm gpt-3-encoder (node) wherever the JS merge table's comma-joined keys
  do not collide; where JS differs from encoder.py, the difference must be reproduced exactly
  by encoder.py with JS's comma-joined merge keys (so the JS encoder is the wrong one there);
- decode(encode(s)) == s byte for byte;
- encode_with_special(s) == the pieces between "<|endoftext|>"s encoded, joined by 50256.
GPT-2's own merges give no string where the JS comma keys change the result (none in the
corpus, none among all strings of up to 4 of the symbols involved); so a hand-made
vocabulary where they do (merges ", )", "( ,", "(, )": the JS encoder reads the pair
("(", ",)") as the merge "(,", ")") shows the two disagree there, that JS's output is exactly
the comma-key emulation, and that lora_dist follows encoder.py, whose merges are pairs.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "gpt2_bpe")
sys.path.insert(0, HERE)
import gpt2_encoder_reference as ref  # noqa: E402

FIXED = [
    "Hello world", " Hello  world ", "I'm sure they'll say it's 'fine', we've seen 'em'd",
    "don't DON'T Don't I'M", "café naïve résumé Ångström façade Œuvre ß", "Größenwahn über Straße",
    "日本語のテキストです。中文字符，标点！", "한국어 문장입니다", "Привет, мир! Ёлка", "Γειά σου Κόσμε", "مرحبا بالعالم",
    "שלום עולם", "हिन्दी पाठ", "emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "tabs\tand\nnewlines\r\n\n\n  spaces   ", "    leading", "trailing    ", "   ", "\n", "a\u00a0b\u2009c\u3000d\u202fe",
    "x\u200by", "\u2028line\u2029para", "numbers 1234567890 3.14159 1,000,000 ½ ² Ⅻ ٣٤٥ ０１２",
    "<|endoftext|>", "before<|endoftext|>after", "<|endoftext|><|endoftext|>", " <|endoftext|> x",
    "<|endoftext", "a,b,,c,,,d ,,,, ,,,,,,,, x,,y", ",,,,,,,,,,,,,,,,", ".,.,.,", "...!!!???---___***",
    "C++ std::vector<int> v{1, 2}; // comment", "https://example.com/path?q=1&r=2#frag", "email@example.com",
    "ALLCAPS lowercase MiXeD", "  \t \t  ", "a" * 200, "ab" * 150, " " * 50 + "x", "\u0000\u0001\u001f\u007f",
    "combining e\u0301 a\u0308", "\ufeffBOM start", "mongolian\u180evowel", "ﬁ ligature ﬂ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
    "'s's't're've'm'll'd", "' s 'S ''", "",
]

CLASSES = ["abc", "XYZ", "é", "ñ", "ü", "日本", "中", "한", "😀", "👍🏽", " ", "  ", "\t", "\n", "\u00a0", "\u3000",
           "0", "123", "'s", "'ll", "'", ",", ",,", ".", "!", "?", "-", "<|endoftext|>", "$", "€", "½", "ß", "ي", "ж"]


def corpus(n_random=400, seed=12):
    rng = random.Random(seed)
    out = list(FIXED)
    for _ in range(n_random):
        out.append("".join(rng.choice(CLASSES) for _ in range(rng.randint(1, 24))))
    return out


def comma_collision_case(work, driver):
    """The JS encoder and encoder.py on a vocabulary made for its comma-joined keys to collide."""
    d = os.path.join(work, "comma")
    os.makedirs(d)
    byte_syms = list(ref.bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(byte_syms + [",)", "(,", "(,)", "<|endoftext|>"])}
    with open(os.path.join(d, "encoder.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "vocab.bpe"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n, )\n( ,\n(, )\n")
    shutil.copy(os.path.join(DATA, "Encoder.js"), d)
    texts = ["(,)", "x(,) (,)", "(,,)"]  # one pre-tokenizer piece each: no letters
    with open(os.path.join(d, "corpus.json"), "w") as f:
        json.dump(texts, f)
    subprocess.run(["node", os.path.join(HERE, "js_encode.js"), os.path.join(d, "corpus.json"),
                    os.path.join(d, "js.json"), d], check=True)
    subprocess.run([driver, os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe"), os.path.join(d, "corpus.json"),
                    os.path.join(d, "cpp.json")], check=True)
    js = json.load(open(os.path.join(d, "js.json")))
    cpp = json.load(open(os.path.join(d, "cpp.json")))["encode"]
    py = ref.Encoder(os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe"))
    emu = ref.Encoder(os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe"), js_style=True)
    failures = []
    for i, s in enumerate(texts):
        want, got_js = py.encode(s), js[i]
        print(f"comma keys, {s!r}: encoder.py {want}, JS {got_js}, JS emulated {emu.encode(s)}, lora_dist {cpp[i]}")
        if cpp[i] != want:
            failures.append(f"comma keys {s!r}: lora_dist {cpp[i]} != encoder.py {want}")
        if got_js != emu.encode(s):
            failures.append(f"comma keys {s!r}: JS {got_js} is not the comma-key emulation {emu.encode(s)}")
    if js[0] == py.encode(texts[0]):
        failures.append("the hand-made vocabulary no longer separates the JS encoder from encoder.py")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    texts = corpus()
    cpath = os.path.join(a.work, "corpus.json")
    with open(cpath, "w") as f:
        json.dump(texts, f)
    vocab, merges = os.path.join(DATA, "encoder.json"), os.path.join(DATA, "vocab.bpe")

    subprocess.run([a.driver, vocab, merges, cpath, os.path.join(a.work, "cpp.json")], check=True)
    cpp = json.load(open(os.path.join(a.work, "cpp.json")))
    subprocess.run(["node", os.path.join(HERE, "js_encode.js"), cpath, os.path.join(a.work, "js.json")], check=True)
    js = json.load(open(os.path.join(a.work, "js.json")))
    py = ref.Encoder(vocab, merges)
    py_js_keys = ref.Encoder(vocab, merges, js_style=True)

    failures = []
    js_differs = []
    eot = py.encoder["<|endoftext|>"]
    for i, s in enumerate(texts):
        want = py.encode(s)
        if cpp["encode"][i] != want:
            failures.append(f"encode {s!r}: lora_dist {cpp['encode'][i]} != encoder.py {want}")
        if not cpp["round_trip"][i]:
            failures.append(f"decode(encode({s!r})) != the text")
        special = []
        for k, part in enumerate(s.split("<|endoftext|>")):
            special += ([eot] if k else []) + py.encode(part)
        if cpp["encode_with_special"][i] != special:
            failures.append(f"encode_with_special {s!r}: {cpp['encode_with_special'][i]} != {special}")
        if js[i] != want:
            js_differs.append(s)
            if py_js_keys.encode(s) != js[i]:
                failures.append(f"JS gpt-3-encoder differs from encoder.py on {s!r} for a reason other than its "
                                f"comma-joined merge keys: JS {js[i]}, encoder.py {want}")
            elif "," not in s:
                failures.append(f"JS differs on {s!r}, which has no comma")
        elif cpp["encode"][i] != js[i]:
            failures.append(f"lora_dist differs from JS on {s!r} where JS agrees with encoder.py")
    failures += comma_collision_case(a.work, a.driver)
    # The references themselves must not be vacuous: a known GPT-2 encoding.
    if py.encode("Hello world") != [15496, 995]:
        failures.append(f"encoder.py gives {py.encode('Hello world')} for 'Hello world', GPT-2 gives [15496, 995]")
    print(f"corpus: {len(texts)} strings, {sum(len(x) for x in cpp['encode'])} tokens")
    print(f"JS gpt-3-encoder differs from encoder.py on {len(js_differs)} strings, each reproduced by encoder.py with "
          f"comma-joined merge keys: {[x[:40] for x in js_differs[:6]]}")
    for f in failures[:30]:
        print("FAIL:", f)
    print(f"gpt2_tokenizer: {len(texts) - len({f.split(' ', 2)[1] for f in failures})} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
