#!/usr/bin/env python3
"""lora_dist's SentencePiece tokenizer (io/sentencepiece_tokenizer.h, through load_tokenizer)
against python3-sentencepiece, on models this test trains itself (the Llama 2 tokenizer.model
is not redistributable): a BPE model with byte_fallback (Llama 2's kind) and a unigram model,
each trained on a generated multilingual corpus and written as DIR/tokenizer.model.

    sentencepiece_test.py --driver build/tests/tokenize_driver --work DIR

On tokenizer_test.py's varied UTF-8 corpus plus hf_tokenizers_test.py's additions:
- encode == SentencePieceProcessor.encode (the text of <s> / </s> stays text);
- encode_with_special == the text split at <s>, </s> and <unk>, those becoming their ids and
  each stretch between encoded by SentencePiece (as Hugging Face's LlamaTokenizer does);
- decode == SentencePieceProcessor.decode of the same ids, and decode(encode(s)) == s
  wherever SentencePiece itself gives s back (its NFKC normalization may not);
- bos is <s>, eos is </s>; offsets never decrease and stay inside the text (SentencePiece drops
  leading whitespace, so the first token may start later than 0).
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_tokenizers_test  # noqa: E402  (the corpus)

WORDS = ["the", "model", "token", "train", "loss", "rank", "layer", "café", "naïve", "Straße", "日本語", "中文", "한국어",
         "Привет", "мир", "γειά", "مرحبا", "שלום", "😀", "123", "4567", "don't", "it's", "C++", "x", "data"]


def training_text(path, seed=5, lines=3000):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))) + "\n")


def train(work, model_type):
    folder = os.path.join(work, model_type)
    os.makedirs(folder, exist_ok=True)
    text = os.path.join(work, "train.txt")
    spm.SentencePieceTrainer.train(input=text, model_prefix=os.path.join(folder, "tokenizer"), vocab_size=800 if model_type == "bpe" else 300, hard_vocab_limit=False,
                                   model_type=model_type, byte_fallback=model_type == "bpe", character_coverage=0.98,
                                   bos_id=1, eos_id=2, unk_id=0, minloglevel=2)
    os.remove(os.path.join(folder, "tokenizer.vocab"))
    return folder


def with_special(sp, s):
    specials = {"<s>": sp.bos_id(), "</s>": sp.eos_id(), "<unk>": sp.unk_id()}
    out, at = [], 0
    for m in re.finditer("<unk>|</s>|<s>", s):
        out += sp.encode(s[at:m.start()]) if m.start() > at else []
        out.append(specials[m.group()])
        at = m.end()
    return out + (sp.encode(s[at:]) if at < len(s) else [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    training_text(os.path.join(a.work, "train.txt"))
    texts = hf_tokenizers_test.corpus()
    cpath = os.path.join(a.work, "corpus.json")
    json.dump(texts, open(cpath, "w"))
    failures = []
    for model_type in ["bpe", "unigram"]:
        folder = train(a.work, model_type)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
        out = os.path.join(a.work, model_type + ".json")
        subprocess.run([a.driver, folder, cpath, out], check=True)
        cpp = json.load(open(out))
        fail = []
        for i, s in enumerate(texts):
            want = sp.encode(s)
            if cpp["encode"][i] != want:
                fail.append(f"encode {s!r}: lora_dist {cpp['encode'][i]} != sentencepiece {want}")
            if cpp["encode_with_special"][i] != with_special(sp, s):
                fail.append(f"encode_with_special {s!r}: {cpp['encode_with_special'][i]} != {with_special(sp, s)}")
            back = sp.decode(want)
            if cpp["decode_plain"][i] != back:
                fail.append(f"decode of {s!r}'s ids: lora_dist {cpp['decode_plain'][i]!r} != sentencepiece {back!r}")
            starts = cpp["starts"][i]
            if any(y < x for x, y in zip(starts, starts[1:])) or any(x > len(s.encode("utf-8")) for x in starts):
                fail.append(f"offsets of {s!r}: {starts}")
        if (cpp["bos"], cpp["eos"], cpp["vocab_size"]) != (sp.bos_id(), sp.eos_id(), sp.get_piece_size()):
            fail.append(f"bos/eos/vocab {cpp['bos']}/{cpp['eos']}/{cpp['vocab_size']} != "
                        f"{sp.bos_id()}/{sp.eos_id()}/{sp.get_piece_size()}")
        round_trips = sum(sp.decode(sp.encode(s)) == s for s in texts)
        used_bytes = sum(any(sp.is_byte(t) for t in ids) for ids in cpp["encode"])
        print(f"sentencepiece {model_type}: {cpp['describe']}: {len(texts)} strings, {round_trips} round-trip exactly, "
              f"{used_bytes} use byte pieces: {len(fail)} failures")
        if model_type == "bpe" and used_bytes == 0:
            fail.append("no string used byte_fallback pieces: the corpus does not exercise them")
        failures += [f"{model_type}: {f}" for f in fail]
    for f in failures[:40]:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
