#!/usr/bin/python3
"""Would the build and the tests work on a fresh Debian 12 machine? Every Debian package they
use must come in through launch/install_deps.sh.

A machine that is kept between runs collects packages installed by hand or pulled in as a
Recommends; a suite that passes there can still fail on a new machine (Debian's libdnnl-dev
needs ocl-icd-opencl-dev for its CMake config, yet only recommends it). This check reads what
the build and the tests really use and maps each file to the Debian package that owns it:

  build    every file CMake found (CMakeCache.txt) and every library the built programs load (ldd)
  python   every module that the project's Python scripts (tests/, launch/) import, as
           /usr/bin/python3 resolves it, and the shared libraries those modules' folders hold
  programs every program on PATH that the tests and launch scripts name (node, h5dump, sbatch, ...)

A used package passes when it is in the Depends closure of install_deps.sh's packages
(apt-cache depends --recurse, no Recommends: what `apt-get install --no-install-recommends`
brings in), or Essential, or of Priority required (every Debian system has those). A Python
module that is not in a Debian package (pip-installed by hand), or not importable at all, fails too.

    check_packages.py REPO_DIR BUILD_DIR      exit 0: all used packages covered; 1: a list of those that are not
"""
import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys


def sh(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def install_deps_packages(repo):
    path = os.path.join(repo, "launch", "install_deps.sh")
    match = re.search(r"^packages=\((.*?)^\)", open(path).read(), re.S | re.M)
    if not match:
        sys.exit(f"check_packages: {path}: no packages=( ... ) array")
    words = []
    for line in match.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return words


def depends_closure(packages):
    out = sh(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
              "--no-breaks", "--no-replaces", "--no-enhances", *packages])
    # Top-level lines name packages (virtual ones in <>); the indented ones are their relations.
    return {l.strip("<>").split(":")[0] for l in out.splitlines() if l and not l.startswith(" ")}


def base_system():
    """Packages every Debian system has: Essential, or Priority required."""
    out = sh(["dpkg-query", "-W", "-f=${Package}\t${Essential}\t${Priority}\n"])
    return {f[0] for f in (l.split("\t") for l in out.splitlines())
            if len(f) == 3 and (f[1] == "yes" or f[2] == "required")}


class Owners:
    """File -> Debian package, from dpkg's file lists (read once: one `dpkg -S` per file is slow)."""

    def __init__(self):
        self.by_file = {}
        for listing in glob.glob("/var/lib/dpkg/info/*.list"):
            package = os.path.basename(listing)[:-len(".list")].split(":")[0]
            for line in open(listing, errors="replace"):
                self.by_file.setdefault(line.rstrip("\n"), package)

    def __call__(self, path):
        """The package owning a file, a symlink to it, or the folder a file's name passes through, or None."""
        for p in (path, os.path.realpath(path)):
            if p in self.by_file:
                return self.by_file[p]
            # dpkg lists /lib/x86_64-linux-gnu/... where the file is reached as /usr/lib/... (merged /usr).
            if p.startswith("/usr/") and p[4:] in self.by_file:
                return self.by_file[p[4:]]
        return None


def build_files(build, repo):
    files = set()
    for line in open(os.path.join(build, "CMakeCache.txt"), errors="replace"):
        m = re.match(r"^[^#/][^:=]*:(FILEPATH|PATH|STRING|INTERNAL)=(.*)$", line.strip())
        if m:
            for v in re.split(r"[;\s]", m.group(2)):
                if v.startswith("/") and not v.startswith(repo) and os.path.isfile(v):
                    files.add(v)
    for exe in glob.glob(os.path.join(build, "*")) + glob.glob(os.path.join(build, "tests", "*")):  # lora_dist, the plugin, test programs
        is_program = os.access(exe, os.X_OK) and not exe.endswith(".sh")
        if os.path.isfile(exe) and (is_program or exe.endswith(".so")):
            for m in re.finditer(r"=> (/\S+)", sh(["ldd", exe])):
                files.add(m.group(1))
    return files


def project_scripts(repo):
    """The tracked scripts of tests/ and launch/, and the CMake files. launch/gpu/ runs on a GPU
    host from a bundle it carries (launch/gpu/pack.sh), not with this machine's packages."""
    tracked = sh(["git", "-C", repo, "ls-files", "tests", "launch", "CMakeLists.txt"]).split()
    return [os.path.join(repo, f) for f in tracked
            if os.path.isfile(os.path.join(repo, f)) and not f.startswith("launch/gpu/")]


def python_imports(scripts):
    """Top-level module names the .py scripts import (parsed, so docstrings do not count), and
    those of `python3 -c "..."` lines in shell and CMake files."""
    modules = {}
    for path in scripts:
        text = open(path, errors="replace").read()
        if path.endswith(".py"):
            try:
                tree = ast.parse(text, path)
            except SyntaxError as e:
                sys.exit(f"check_packages: {path}: {e}")
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for n in names:
                    modules.setdefault(n.split(".")[0], path)
        else:
            for snippet in re.findall(r"python3?\s+-c\s+(?:\"([^\"]*)\"|'([^']*)')", text):
                for n in re.findall(r"\bimport\s+([A-Za-z_]\w*)", "".join(snippet)):
                    modules.setdefault(n, path)
    return modules


def module_files(modules, repo):
    """{module: [files]}: the module's file and the shared libraries of its package folder."""
    code = ("import importlib.util, sys, os, json\n"
            "out = {}\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n"
            "        spec = importlib.util.find_spec(name)\n"
            "    except Exception:\n"
            "        spec = None\n"
            "    out[name] = None if spec is None else (spec.origin or (list(spec.submodule_search_locations or []) or [None])[0])\n"
            "print(json.dumps(out))\n")
    found = json.loads(subprocess.run(["/usr/bin/python3", "-c", code, *sorted(modules)],
                                      capture_output=True, text=True, check=True).stdout)
    result = {}
    for name, origin in found.items():
        if origin in ("built-in", "frozen"):
            continue
        if origin is None:
            result[name] = None
            continue
        if origin.startswith(repo):  # the project's own helper modules
            continue
        files = [origin]
        folder = os.path.dirname(origin)
        if os.path.basename(origin) == "__init__.py":  # a package: its compiled parts load libraries
            files += glob.glob(os.path.join(folder, "**", "*.so"), recursive=True)[:20]
        result[name] = files
    return result


SHELL_WORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
               "function", "time", "local", "export", "return", "exit", "set", "source", "read", "cd", "declare",
               "trap", "wait", "shift", "unset", "eval", "break", "continue", "true", "false", "echo", "printf",
               "test", "exec", "command", "kill", "pwd", "type", "ulimit", "umask", "let"}


def invoked_programs(scripts):
    """{program: script} for the programs the scripts run: a command's first word in shell
    scripts (after `timeout`, `env`, `sudo`-free wrappers too), COMMAND in CMake files, the first
    string of a subprocess argument list and shutil.which() in Python."""
    found = {}
    for path in scripts:
        text = open(path, errors="replace").read()
        words = []
        if path.endswith(".sh"):
            for line in text.splitlines():
                line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
                words += re.findall(r"(?:^|[|;&]|\$\(|`|\b(?:then|do|else|exec|timeout\s+\S+|env))\s*([A-Za-z][\w.+-]*)(?=\s|$|\))", line)
        elif path.endswith(".cmake") or path.endswith("CMakeLists.txt"):
            words += re.findall(r"\bCOMMAND\s+([A-Za-z][\w.+-]*)\b", text)
        elif path.endswith(".py"):
            words += re.findall(r"\[\s*[\"']([A-Za-z][\w.+-]*)[\"']\s*,", text)
            words += re.findall(r"which\(\s*[\"']([A-Za-z][\w.+-]*)[\"']", text)
        for w in words:
            if w not in SHELL_WORDS:
                found.setdefault(w, path)
    programs = {}
    for w, script in sorted(found.items()):
        where = shutil.which(w, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if where and not where.startswith("/usr/local/cuda"):
            programs[w] = (where, script)
    return programs


def main():
    repo, build = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
    deps = install_deps_packages(repo)
    allowed = depends_closure(deps) | base_system()
    owner = Owners()
    problems, used = [], {}  # used: package -> what uses it

    for f in sorted(build_files(build, repo)):
        p = owner(f)
        if p:  # a file no package owns (the optional CUDA toolkit in /usr/local/cuda) is not Debian's
            used.setdefault(p, f"the build: {f}")
    scripts = project_scripts(repo)
    own_modules = {os.path.splitext(os.path.basename(f))[0] for f in scripts if f.endswith(".py")}
    imports = {m: s for m, s in python_imports(scripts).items() if m not in own_modules}
    for name, files in sorted(module_files(imports, repo).items()):
        script = os.path.relpath(imports[name], repo)
        if files is None:
            problems.append(f"python module '{name}' (imported by {script}) is not importable by /usr/bin/python3")
            continue
        p = owner(files[0])
        if p is None:
            problems.append(f"python module '{name}' ({files[0]}, imported by {script}) is not from a Debian "
                            f"package: a fresh machine would not have it")
            continue
        used.setdefault(p, f"python module {name}, imported by {script}")
        for lib in files[1:]:
            for m in re.finditer(r"=> (/\S+)", sh(["ldd", lib])):
                q = owner(m.group(1))
                if q:
                    used.setdefault(q, f"python module {name} ({script}) loads {m.group(1)}")
    for word, (where, script) in invoked_programs(scripts).items():
        p = owner(where)
        if p:
            used.setdefault(p, f"program {word} ({where}), run by {os.path.relpath(script, repo)}")

    for p, why in sorted(used.items()):
        if p not in allowed:
            problems.append(f"package {p} ({why}) is not brought in by launch/install_deps.sh")
    print(f"check_packages: {len(used)} Debian packages used by the build and the tests; install_deps.sh "
          f"lists {len(deps)}, whose Depends closure with the base system is {len(allowed)} packages")
    if problems:
        print("A fresh machine would lack what these need:")
        for line in problems:
            print("  " + line)
        print("Add the package to launch/install_deps.sh (or stop using it).")
        return 1
    print("check_packages: ok, every used package comes from install_deps.sh or the base system")
    return 0


if __name__ == "__main__":
    sys.exit(main())
