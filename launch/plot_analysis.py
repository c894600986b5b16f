#!/usr/bin/env python3
"""Heatmaps of the subspace similarity phi that `lora_dist analyze --json` wrote, laid out as
Figures 3 and 4 of the LoRA paper (Hu et al. 2021): i (the first adapter's top-i right
singular vectors) down the rows, j (the second's) across the columns, 0 to 1 in one colour
scale. A grid larger than 8 x 8 gets a second panel with its first 8 x 8, as the paper
zooms in. One PNG per layer, module and pair: <out>/phi_layer<L>_<module>_<a>v<b>.png.

`lora_dist analyze --plots DIR` runs this itself; by hand:
    python3 launch/plot_analysis.py --json analysis.json --out plots/
Needs Debian's python3-matplotlib (launch/install_deps.sh installs it).
"""
import argparse
import json
import os
import sys

ZOOM = 8  # the paper's Figure 3 zooms into i, j <= 8


def adapter_name(report, index):
    a = report["adapters"][index - 1]
    return f"[{index}] r={a['r']}"


def draw(ax, grid, title, annotate):
    rows, cols = len(grid), len(grid[0])
    # extent centres cell (i, j) on integer ticks 1..rows, 1..cols, i = 1 at the top.
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest", aspect="auto",
                      extent=(0.5, cols + 0.5, rows + 0.5, 0.5))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("j")
    ax.set_ylabel("i")
    step_i, step_j = max(1, rows // 8), max(1, cols // 8)
    ax.set_yticks(range(1, rows + 1, step_i))
    ax.set_xticks(range(1, cols + 1, step_j))
    if annotate:
        for i in range(rows):
            for j in range(cols):
                v = grid[i][j]
                ax.text(j + 1, i + 1, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 else "white")
    return image


def plot_one(plt, report, entry, out_dir):
    grid = entry["phi"]
    rows, cols = len(grid), len(grid[0])
    a, b = adapter_name(report, entry["a"]), adapter_name(report, entry["b"])
    title = f"φ(A {a}, A {b}, i, j)\nlayer {entry['layer']}, ΔW_{entry['module']}"
    zoom = rows > ZOOM or cols > ZOOM
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(9.5 if zoom else 5.2, 4.4), squeeze=False)
    image = draw(axes[0][0], grid, title, annotate=not zoom)
    if zoom:
        small = [row[:ZOOM] for row in grid[:ZOOM]]
        draw(axes[0][1], small, f"{title}, i, j <= {ZOOM}", annotate=True)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.85)
    name = f"phi_layer{entry['layer']}_{entry['module']}_{entry['a']}v{entry['b']}.png"
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True, help="the file lora_dist analyze --json wrote")
    p.add_argument("--out", required=True, help="folder for the PNG files (created if missing)")
    a = p.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError as e:
        sys.exit(f"plot_analysis.py: matplotlib is missing ({e}); install python3-matplotlib (launch/install_deps.sh)")
    try:
        with open(a.json) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"plot_analysis.py: {a.json}: {e}")
    if report.get("format") != "lora_dist analyze v1":
        sys.exit(f"plot_analysis.py: {a.json}: not a lora_dist analyze v1 file (format {report.get('format')!r})")
    os.makedirs(a.out, exist_ok=True)
    written = [plot_one(plt, report, e, a.out) for e in report["similarity"]]
    if not written:
        print("plot_analysis.py: no phi grid in the file (it takes two adapters); nothing drawn")
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
