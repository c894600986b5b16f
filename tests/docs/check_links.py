#!/usr/bin/python3
"""Checks the relative links of the repository's Markdown files.

    /usr/bin/python3 tests/docs/check_links.py REPO_ROOT

Files: README.md, docs/*.md (tracked or not) and every other *.md that git tracks
(`git ls-files '*.md'`); outside a git checkout, every *.md under REPO_ROOT but build*/, out/,
.git/ and node_modules/. For each link `[text](path#anchor)`, `[text](#anchor)`, image
`![alt](path)` and reference definition `[label]: path`, outside fenced code blocks and inline
code: the path must exist relative to the linking file (a folder is fine; a leading / means the
repository root), and an anchor into a Markdown file must be one of its headings' slugs as
GitHub makes them (lowercase; every character but letters, marks, digits, connector
punctuation such as _, spaces and hyphens removed; spaces become hyphens; the second heading
with the same slug gets -1, the third -2, ...) or an HTML id / name in it. Links with a
scheme (http:, https:, mailto:, ...) are not checked.

Prints `FILE:LINE: broken link 'TARGET' (why)` for each broken link and exits 1; otherwise
prints `check_links: N links in M files, all resolve` and exits 0. Python 3 standard library
only.
"""

import os
import re
import subprocess
import sys
import unicodedata
import urllib.parse

SKIP_DIRS = {".git", "node_modules", "out"}

FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ID_RE = re.compile(r"""<[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
CODE_SPAN_RE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
# [text](target) or ![alt](target), with an optional "title"; text may hold one level of [..].
INLINE_LINK_RE = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>\n]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REF_DEF_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def heading_text(raw):
    """The text GitHub renders for a heading's inline markdown (what its slug is made from)."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", raw)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)                                      # inline HTML tags
    return text.replace("`", "")                                             # code: text kept


def slug(text):
    """GitHub's heading anchor (github-slugger) of a heading's rendered text."""
    kept = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in " -" or cat[0] in "LMN" or cat == "Pc":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def code_mask(lines):
    """For each line, whether it lies inside (or is a fence of) a fenced code block."""
    mask, fence = [], None
    for line in lines:
        m = FENCE_RE.match(line)
        if fence is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence = m.group(1)
                mask.append(True)
                continue
            mask.append(False)
        else:
            mask.append(True)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = None
    return mask


def anchors_of(path, cache={}):
    """The anchors a Markdown file defines: its heading slugs (with GitHub's -N suffixes for
    repeats) and the ids / names of HTML elements in it."""
    if path in cache:
        return cache[path]
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    mask = code_mask(lines)
    anchors, seen = set(), {}

    def add(text):
        base = slug(heading_text(text))
        s = base
        while s in seen:  # github-slugger: base-1, base-2, ... skipping slugs already taken
            seen[base] += 1
            s = "%s-%d" % (base, seen[base])
        seen.setdefault(s, 0)
        anchors.add(s)

    prev_paragraph = None  # the previous line, if it could be a setext heading's text
    for i, line in enumerate(lines):
        if mask[i]:
            prev_paragraph = None
            continue
        for m in HTML_ID_RE.finditer(line):
            anchors.add(m.group(1))
        atx = ATX_RE.match(line)
        if atx:
            add(re.sub(r"[ \t]+#+$", "", atx.group(2) or ""))
            prev_paragraph = None
            continue
        st = SETEXT_RE.match(line)
        if st and prev_paragraph is not None:
            add(prev_paragraph.strip())
            prev_paragraph = None
            continue
        stripped = line.strip()
        if (stripped and not line.startswith("    ") and not stripped.startswith(("|", ">", "-", "*", "+"))
                and not re.match(r"^\d+[.)]\s", stripped)):
            prev_paragraph = line if prev_paragraph is None else prev_paragraph + " " + line
        else:
            prev_paragraph = None
    cache[path] = anchors
    return anchors


def links_of(lines):
    """(line number, target) of every link outside fenced code blocks and code spans."""
    mask = code_mask(lines)
    for i, line in enumerate(lines):
        if mask[i]:
            continue
        plain = CODE_SPAN_RE.sub(lambda m: "x" * len(m.group(0)), line)
        m = REF_DEF_RE.match(plain)
        if m:
            yield i + 1, m.group(1)
            continue
        for m in INLINE_LINK_RE.finditer(plain):
            yield i + 1, m.group(1)


def markdown_files(root):
    """README.md, docs/*.md and the *.md files git tracks, relative to root, sorted."""
    files = set()
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "*.md"], cwd=root, check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        files.update(p for p in out.decode("utf-8", "replace").split("\0") if p)
    except (OSError, subprocess.CalledProcessError):
        for d, dirs, names in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("build"))
            rel = os.path.relpath(d, root)
            files.update(os.path.normpath(os.path.join(rel, n)) for n in names if n.endswith(".md"))
    if os.path.isfile(os.path.join(root, "README.md")):
        files.add("README.md")
    docs = os.path.join(root, "docs")
    if os.path.isdir(docs):
        files.update("docs/" + n for n in os.listdir(docs) if n.endswith(".md"))
    return sorted(f for f in files if os.path.isfile(os.path.join(root, f)))


def check_target(root, md_file, target):
    """None if target resolves from md_file, else why not."""
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1]
    path, _, anchor = target.partition("#")
    path = urllib.parse.unquote(path.split("?", 1)[0])
    anchor = urllib.parse.unquote(anchor)
    here = os.path.join(root, md_file)
    if not path:
        dest = here
    elif path.startswith("/"):
        dest = os.path.join(root, path.lstrip("/"))
    else:
        dest = os.path.join(os.path.dirname(here), path)
    dest = os.path.normpath(dest)
    if not os.path.exists(dest):
        return "no such file: %s" % os.path.relpath(dest, root)
    if anchor and os.path.isfile(dest) and dest.lower().endswith((".md", ".markdown")):
        if anchor not in anchors_of(dest):
            return "no heading with anchor #%s in %s" % (anchor, os.path.relpath(dest, root))
    return None


def main(argv):
    if len(argv) != 2:
        print("usage: check_links.py REPO_ROOT", file=sys.stderr)
        return 2
    root = os.path.abspath(argv[1])
    files = markdown_files(root)
    if not files:
        print("check_links: no Markdown files under %s" % root, file=sys.stderr)
        return 1
    count, broken = 0, 0
    for md in files:
        with open(os.path.join(root, md), encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for lineno, target in links_of(lines):
            if SCHEME_RE.match(target) or target.startswith("//"):
                continue
            count += 1
            why = check_target(root, md, target)
            if why:
                broken += 1
                print("%s:%d: broken link '%s' (%s)" % (md, lineno, target, why))
    if broken:
        print("check_links: %d of %d links in %d files are broken" % (broken, count, len(files)))
        return 1
    print("check_links: %d links in %d files, all resolve" % (count, len(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
