#!/usr/bin/python3
"""Self-test of check_links.py: on a small tree of Markdown files it must flag exactly the broken
links (a missing file, a missing anchor, a repeated heading's anchor one past the last repeat)
and none of the good ones (a file, a folder, a heading's anchor with code, punctuation and a
Unicode letter, the -1 anchor of a repeated heading, a same-file anchor, an HTML id), ignore
links in fenced code blocks, in inline code and with a scheme, and pass once the broken ones are
fixed. So the link test of the repository cannot pass by checking nothing.

    /usr/bin/python3 tests/docs/test_check_links.py
"""

import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_links.py")

README = """\
# Tiny project

- [a page](docs/page.md)
- [a folder](docs)
- [a heading with code and a Unicode letter](docs/page.md#φ-of-lora_dist-analyze-a--b)
- [the second "Repeat" heading](docs/page.md#repeat-1)
- [a missing file](docs/missing.md)
- [a missing anchor](docs/page.md#no-such-heading)
- [a third "Repeat" that does not exist](docs/page.md#repeat-2)
- [a web page](https://example.org/nowhere.md) and [mail](mailto:someone@example.org)
- `[inline code](not/a/link.md)` is not a link

```sh
# a shell comment, not a heading; [not a link](in/a/code/block.md)
```
"""

PAGE = """\
# Page

Back to [the top](../README.md#tiny-project), to [this page's own heading](#page) and to
[an HTML anchor](#custom-id).

## φ of `lora_dist analyze`: A → B

<a id="custom-id"></a>

## Repeat

## Repeat

```
## not a heading: its anchor does not exist
```
"""

# (line, target) of each broken link in README above: exactly these must be reported.
EXPECTED = {
    ("README.md", 7, "docs/missing.md"),
    ("README.md", 8, "docs/page.md#no-such-heading"),
    ("README.md", 9, "docs/page.md#repeat-2"),
}


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run(root):
    p = subprocess.run([sys.executable, CHECKER, root], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    return p.returncode, p.stdout


def main():
    failures = []
    with tempfile.TemporaryDirectory(prefix="check_links_selftest_") as root:
        write(root, "README.md", README)
        write(root, "docs/page.md", PAGE)
        # An extra link to a heading inside PAGE's code block must be broken too.
        write(root, "docs/other.md", "# Other\n\n[code-block heading](page.md#not-a-heading-its-anchor-does-not-exist)\n")
        expected = EXPECTED | {("docs/other.md", 3, "page.md#not-a-heading-its-anchor-does-not-exist")}

        rc, out = run(root)
        print(out, end="")
        reported = set()
        for line in out.splitlines():
            if ": broken link '" not in line:
                continue
            where, _, rest = line.partition(": broken link '")
            f, _, n = where.rpartition(":")
            reported.add((f, int(n), rest.split("'", 1)[0]))
        if rc != 1:
            failures.append("exit status %d with broken links, expected 1" % rc)
        for miss in sorted(expected - reported):
            failures.append("not reported: %s:%d '%s'" % miss)
        for extra in sorted(reported - expected):
            failures.append("reported but not broken: %s:%d '%s'" % extra)

        # Fixed: every remaining link resolves and the checker says how many it checked.
        write(root, "README.md", "\n".join(l for l in README.split("\n")
                                           if "missing" not in l and "does not exist" not in l))
        write(root, "docs/other.md", "# Other\n\n[repeat](page.md#repeat)\n")
        rc, out = run(root)
        print(out, end="")
        # README: page, folder, φ heading, repeat-1; page: 3; other: 1 = 8 checked links.
        if rc != 0 or "check_links: 8 links in 3 files, all resolve" not in out:
            failures.append("the fixed tree: exit %d, output %r; expected 0 and "
                            "'check_links: 8 links in 3 files, all resolve'" % (rc, out))

    for f in failures:
        print("test_check_links: FAIL: " + f)
    if failures:
        return 1
    print("test_check_links: ok (3 + 1 broken links flagged, 8 good ones pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
