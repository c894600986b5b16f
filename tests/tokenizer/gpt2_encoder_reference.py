"""OpenAI's GPT-2 encoder (gpt-2/src/encoder.py, MIT), the reference algorithm, with Debian's
python3-regex for \\p{L} / \\p{N}; and `js_style`, the same with the npm gpt-3-encoder's merge
table, whose keys are the two symbols joined by a comma (a JS array used as an object key):
"a,b" + "c" and "a" + "b,c" are then one key, the later merge's rank wins, and among pairs of
equal rank the rightmost wins. tokenizer_test.py uses it to show where and why the JS
encoder departs from the reference."""
import json

import regex as re

PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return {(a, b) for a, b in zip(word, word[1:])}


class Encoder:
    def __init__(self, encoder_json, vocab_bpe, js_style=False):
        with open(encoder_json, encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(vocab_bpe, encoding="utf-8") as f:
            merges = [tuple(m.split()) for m in f.read().split("\n")[1:-1]]
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.js_style = js_style
        if js_style:
            self.ranks = dict(zip([",".join(m) for m in merges], range(len(merges))))
        else:
            self.ranks = dict(zip(merges, range(len(merges))))
        self.cache = {}
        self.pat = re.compile(PATTERN)

    def best_pair(self, word):
        if not self.js_style:
            pairs = get_pairs(word)
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            return bigram if bigram in self.ranks else None
        by_rank = {}
        for p in zip(word, word[1:]):  # left to right; a later pair of the same rank replaces an earlier one
            by_rank[self.ranks.get(",".join(p), 10e10)] = p
        bigram = by_rank[min(by_rank)]
        return bigram if ",".join(bigram) in self.ranks else None

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        while len(word) > 1:
            bigram = self.best_pair(word)
            if bigram is None:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        self.cache[token] = " ".join(word)
        return self.cache[token]

    def encode(self, text):
        out = []
        for token in re.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            out.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return out

    def decode(self, tokens):
        return bytearray([self.byte_decoder[c] for c in "".join(self.decoder[t] for t in tokens)]).decode("utf-8", "replace")
