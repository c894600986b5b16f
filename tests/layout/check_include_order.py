#!/usr/bin/python3
"""The source tree's include directions stay downward (docs/architecture.md, "Source layout").

Lower layers include nothing from above: comm/, model/ and io/ never include trainer/. Inside
trainer/ each folder is a room with a floor; a file may include its own room and rooms on lower
floors only, never a sibling on its own floor or anything above:

  0 devices   the planner's device tables (published GPU figures)
  1 config    run.yaml: types, loading, validation
  2 machine   what this process runs on: the CPU measured, memory, backend, BLAS threads
  3 train     the training loop
  4 plan, export, prepare, generate, analyze   the subcommands
  5 bench     (prints plan's prediction beside its measurement)
  6 main.cpp  the command line

    check_include_order.py REPO_DIR      exit 1 naming every include that goes up or sideways
    check_include_order.py --self-test   the check on a small tree of known good and bad includes
"""
import os
import re
import subprocess
import sys

FLOORS = {"devices": 0, "config": 1, "machine": 2, "train": 3, "plan": 4, "export": 4, "prepare": 4,
          "generate": 4, "analyze": 4, "bench": 5, "main.cpp": 6}
LOWER_LAYERS = ("comm/", "model/", "io/")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def room(path):
    """'train' for trainer/train/x.h, 'main.cpp' for trainer/main.cpp, None outside trainer/."""
    parts = path.split("/")
    return parts[1] if parts[0] == "trainer" and len(parts) > 1 else None


def violations(repo, files):
    bad = []
    for f in files:
        text = open(os.path.join(repo, f), errors="replace").read()
        for line_no, target in ((text.count("\n", 0, m.start()) + 1, m.group(1)) for m in INCLUDE.finditer(text)):
            if f.startswith(LOWER_LAYERS) and target.startswith("trainer/"):
                bad.append(f"{f}:{line_no}: includes {target}: comm/, model/ and io/ include nothing from trainer/")
                continue
            src, dst = room(f), room(target)
            if src is None or dst is None:
                continue
            if src not in FLOORS or dst not in FLOORS:
                bad.append(f"{f}:{line_no}: includes {target}: trainer/{src if src not in FLOORS else dst} "
                           f"is not a room of the layout (add it to this check and docs/architecture.md)")
            elif src != dst and FLOORS[dst] >= FLOORS[src]:
                bad.append(f"{f}:{line_no}: includes {target}: trainer/{src} (floor {FLOORS[src]}) may include only "
                           f"lower floors, and trainer/{dst} is on floor {FLOORS[dst]}")
    return bad


def self_test():
    """The check on a small tree with one include of each kind, so that it cannot pass by seeing nothing."""
    import tempfile
    cases = {"trainer/train/a.cpp": '#include "trainer/config/b.h"\n#include "trainer/train/c.h"\n',  # down, own room: ok
             "trainer/config/b.h": '#include "trainer/train/c.h"\n',          # up
             "trainer/export/d.cpp": '#include "trainer/generate/e.h"\n',     # sideways
             "io/f.cpp": '#include "trainer/config/b.h"\n',                   # a lower layer
             "trainer/widgets/g.cpp": '#include "trainer/config/b.h"\n'}      # an unknown room
    with tempfile.TemporaryDirectory() as repo:
        for f, text in cases.items():
            os.makedirs(os.path.join(repo, os.path.dirname(f)), exist_ok=True)
            open(os.path.join(repo, f), "w").write(text)
        flagged = sorted(line.split(":")[0] for line in violations(repo, sorted(cases)))
    expected = ["io/f.cpp", "trainer/config/b.h", "trainer/export/d.cpp", "trainer/widgets/g.cpp"]
    print(f"self-test: flagged {flagged}, expected {expected}")
    return 0 if flagged == expected else 1


def main():
    if sys.argv[1] == "--self-test":
        return self_test()
    repo = os.path.realpath(sys.argv[1])
    files = [f for f in subprocess.run(["git", "-C", repo, "ls-files", "--cached", "--others", "--exclude-standard",
                                        "comm", "model", "io", "trainer"],
                                       capture_output=True, text=True, check=True).stdout.split()
             if f.endswith((".h", ".cpp", ".cu")) and os.path.isfile(os.path.join(repo, f))]
    bad = violations(repo, files)
    for line in bad:
        print(line)
    print(f"check_include_order: {len(files)} files, {len(bad)} include(s) against the layout")
    return 1 if bad or not files else 0


if __name__ == "__main__":
    sys.exit(main())
