"""A small Hugging Face tokenizer.json BPE encoder in Python, written from the file format's
semantics (not from lora_dist's code), as an independent reference for the C++ one.

Covers what Llama 3, Qwen3 and Llama-2-style files use: added tokens found first (leftmost,
longest; special ones only when asked), the NFC / Prepend / Replace normalizers, Split
(Isolated) and ByteLevel pre-tokenizers with python3-regex, and BPE as OpenAI's encoder.py
does it (the lowest-ranked pair merged everywhere, left to right, until none has a rank), with
ignore_merges and byte_fallback. Anything else raises NotImplementedError.
"""
import json
import unicodedata

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xa1, 0xac + 1)) + list(range(0xae, 0xff + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class HfBpe:
    def __init__(self, path):
        j = json.load(open(path, encoding="utf-8"))
        m = j["model"]
        if m.get("type", "BPE") != "BPE":
            raise NotImplementedError(m.get("type"))
        self.vocab = m["vocab"]
        self.ranks = {}
        for r, e in enumerate(m["merges"]):
            pair = tuple(e.split(" ")) if isinstance(e, str) else tuple(e)
            self.ranks.setdefault(pair, r)
        self.ignore_merges = bool(m.get("ignore_merges"))
        self.byte_fallback = bool(m.get("byte_fallback"))
        self.added = sorted(j["added_tokens"], key=lambda t: -len(t["content"]))
        self.normalizers = self._flatten(j.get("normalizer"), "normalizers")
        self.pretokenizers = self._flatten(j.get("pre_tokenizer"), "pretokenizers")
        self.byte_map = bytes_to_unicode()
        self.cache = {}

    @staticmethod
    def _flatten(spec, key):
        if spec is None:
            return []
        if spec["type"] == "Sequence":
            return [s for sub in spec[key] for s in HfBpe._flatten(sub, key)]
        return [spec]

    def normalize(self, s):
        for n in self.normalizers:
            if n["type"] == "NFC":
                s = unicodedata.normalize("NFC", s)
            elif n["type"] == "Prepend":
                s = n["prepend"] + s if s else s
            elif n["type"] == "Replace":
                s = s.replace(n["pattern"]["String"], n["content"])
            else:
                raise NotImplementedError(n["type"])
        return s

    def pretokenize(self, s):
        pieces = [s]
        for p in self.pretokenizers:
            if p["type"] == "Split":
                if p.get("behavior") != "Isolated" or p.get("invert") or "Regex" not in p["pattern"]:
                    raise NotImplementedError(p)
                rx = regex.compile(p["pattern"]["Regex"])
                out = []
                for piece in pieces:
                    at = 0
                    for mt in rx.finditer(piece):
                        if mt.start() > at:
                            out.append(piece[at:mt.start()])
                        if mt.end() > mt.start():
                            out.append(mt.group())
                        at = mt.end()
                    if at < len(piece):
                        out.append(piece[at:])
                pieces = out
            elif p["type"] == "ByteLevel":
                out = []
                for piece in pieces:
                    if p.get("add_prefix_space", True) and not piece.startswith(" "):
                        piece = " " + piece
                    parts = regex.findall(GPT2_PATTERN, piece) if p.get("use_regex", True) else [piece]
                    out += ["".join(self.byte_map[b] for b in part.encode("utf-8")) for part in parts]
                pieces = out
            else:
                raise NotImplementedError(p["type"])
        return pieces

    def bpe(self, piece):
        if piece in self.cache:
            return self.cache[piece]
        if self.ignore_merges and piece in self.vocab:
            return [self.vocab[piece]]
        word = []
        for ch in piece:
            if ch in self.vocab:
                word.append(ch)
            elif self.byte_fallback:
                word += ["<0x%02X>" % b for b in ch.encode("utf-8")]
            else:
                raise NotImplementedError("no symbol for %r" % ch)
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids = [self.vocab[w] for w in word]
        self.cache[piece] = ids
        return ids

    def encode(self, text, special=True):
        """Ids of `text` (no BOS); special: the text of special added tokens is those tokens."""
        tokens = [t for t in self.added if special or not t["special"]]
        out, stretch, i = [], 0, 0
        while i < len(text):
            hit = next((t for t in tokens if text.startswith(t["content"], i)), None)
            if hit is None:
                i += 1
                continue
            out += self._encode_stretch(text[stretch:i])
            out.append(hit["id"])
            i = stretch = i + len(hit["content"])
        return out + self._encode_stretch(text[stretch:])

    def _encode_stretch(self, s):
        if not s:
            return []
        return [i for piece in self.pretokenize(self.normalize(s)) for i in self.bpe(piece)]
