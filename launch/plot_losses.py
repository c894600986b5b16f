#!/usr/bin/env python3
"""Loss curves of one or more training runs, from the metrics.jsonl files lora_dist writes:
train loss per logged step, eval loss per evaluation and the learning rate, one panel each,
every run in its own colour so that runs compare at a glance (r 1 vs r 8, LoRA vs full
fine-tuning, fp32 vs bf16).

    python3 launch/plot_losses.py out/demo/metrics.jsonl --out out/demo/loss.png
    python3 launch/plot_losses.py runs/r1/metrics.jsonl runs/r8/metrics.jsonl \\
        --label "r 1" --label "r 8" --out r1_vs_r8.png

What a run's file holds, and how it is drawn:
- a resumed run logs the steps after its last checkpoint again: the last record of a step
  is the one drawn (it is the one the run kept), and each resume is a dotted vertical line;
- a non-finite loss (written as null, or NaN) is a gap in its curve, never a point;
- a run with a single step or a single eval still plots (a marker on every point).
--summary FILE writes what was drawn (axes, labels, ranges, points per curve) as JSON, for
tests and scripts. Exit 2 naming the file and line for a file that is not metrics.jsonl.
Needs Debian's python3-matplotlib (launch/install_deps.sh installs it).
"""
import argparse
import json
import math
import os
import sys

EXIT_BAD_INPUT = 2
FIGSIZE = (11.0, 3.6)  # inches: three panels side by side
DPI = 100


def fail(message):
    print(f"plot_losses: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def finite_or_none(value):
    """A loss as a float, or None where the run logged a non-finite one (null / NaN / inf)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def read_run(path):
    """{'train': {step: (loss, lr)}, 'eval': {step: loss}, 'resumes': [step, ...]} of one file."""
    train, evals, resumes = {}, {}, []
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        fail(f"{path}: cannot read: {e.strerror}")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)  # Python's json also reads the literals NaN and Infinity
            kind = record["type"]
            if kind == "train":
                train[int(record["step"])] = (finite_or_none(record["loss"]), finite_or_none(record["lr"]))
            elif kind == "eval":
                evals[int(record["step"])] = finite_or_none(record["val_loss"])
            elif kind == "resume":
                resumes.append(int(record["step"]))
        except (ValueError, KeyError, TypeError) as e:
            fail(f"{path}:{number}: not a lora_dist metrics record ({type(e).__name__}: {e})")
    if not train and not evals:
        fail(f"{path}: no train or eval record: nothing to plot")
    return {"train": train, "eval": evals, "resumes": resumes}


def series(points):
    """Sorted (steps, values) with None kept, so that matplotlib leaves a gap there."""
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def as_gaps(values):
    return [float("nan") if v is None else v for v in values]


def draw(runs, labels, out_path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_train, ax_eval, ax_lr) = plt.subplots(1, 3, figsize=FIGSIZE)
    panels = {
        "train": (ax_train, "train loss", "loss"),
        "eval": (ax_eval, "eval loss", "loss"),
        "lr": (ax_lr, "learning rate", "lr"),
    }
    for ax, panel_title, ylabel in panels.values():
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    summary = {"png": out_path, "width_px": int(FIGSIZE[0] * DPI), "height_px": int(FIGSIZE[1] * DPI),
               "axes": {name: {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                               "curves": []}  # read back from the axes as drawn
                        for name, (ax, _, _) in panels.items()}}

    for index, (run, label) in enumerate(zip(runs, labels)):
        colour = f"C{index % 10}"
        steps, pairs = series(run["train"])
        curves = {"train": (steps, [p[0] for p in pairs]), "lr": (steps, [p[1] for p in pairs]),
                  "eval": series(run["eval"])}
        for name, (xs, ys) in curves.items():
            ax = panels[name][0]
            finite = [y for y in ys if y is not None]
            # A marker on every point where there are few, so one step or one eval shows.
            marker = "o" if len(xs) <= 30 else None
            if xs:
                ax.plot(xs, as_gaps(ys), color=colour, marker=marker, markersize=4, linewidth=1.2, label=label)
            summary["axes"][name]["curves"].append({
                "label": label, "points": len(xs), "finite_points": len(finite),
                "x_range": [min(xs), max(xs)] if xs else None,
                "y_range": [min(finite), max(finite)] if finite else None})
        for step in run["resumes"]:
            for ax in (ax_train, ax_eval, ax_lr):
                ax.axvline(step, color=colour, linestyle=":", linewidth=1)
    if len(runs) > 1:
        ax_train.legend(fontsize=8)
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out_path, dpi=DPI)
    plt.close(fig)
    return summary


def main(argv):
    parser = argparse.ArgumentParser(description="Plot train loss, eval loss and learning rate of "
                                     "lora_dist runs from their metrics.jsonl files, overlaid.")
    parser.add_argument("metrics", nargs="+", help="metrics.jsonl files, one per run")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--label", action="append", default=[],
                        help="a run's name in the legend, once per file in order "
                             "(default: the name of the file's folder)")
    parser.add_argument("--title", default="", help="a title over the three panels")
    parser.add_argument("--summary", help="also write what was drawn as JSON to this file")
    args = parser.parse_intermixed_args(argv)  # a --label may follow each file
    if args.label and len(args.label) != len(args.metrics):
        fail(f"{len(args.label)} --label for {len(args.metrics)} metrics files: give one per file or none")
    labels = args.label or [os.path.basename(os.path.dirname(os.path.abspath(m))) or m for m in args.metrics]
    runs = [read_run(m) for m in args.metrics]
    summary = draw(runs, labels, args.out, args.title)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"loss curves of {len(runs)} run(s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
