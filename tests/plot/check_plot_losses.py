#!/usr/bin/python3
"""launch/plot_losses.py on real and awkward metrics files: the PNG it writes has the stated
size, three panels with their titles and axes, a curve drawn in each panel (its colour is in
the picture), the points each curve must have; NaN losses leave gaps, a one-step run plots,
runs overlay, and malformed files exit 2 naming file and line.

    check_plot_losses.py REPO DEMO_METRICS WORKDIR
DEMO_METRICS is the metrics.jsonl of the shortened demo (test demo_eval_loss_falls).
"""
import json
import os
import struct
import subprocess
import sys

import matplotlib.image

PLOT = None  # launch/plot_losses.py
problems = []
C0, C1 = (0x1f / 255, 0x77 / 255, 0xb4 / 255), (0xff / 255, 0x7f / 255, 0x0e / 255)  # matplotlib's first two colours


def expect(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        problems.append(what)


def plot(workdir, name, files, *extra):
    png, summary = os.path.join(workdir, name + ".png"), os.path.join(workdir, name + ".json")
    run = subprocess.run(["/usr/bin/python3", PLOT, *files, "--out", png, "--summary", summary, *extra],
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        expect(False, f"{name}: plot_losses exited {run.returncode}: {run.stderr.strip()}")
        return None, None
    return png, json.load(open(summary))


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def colour_in_panels(png, colour):
    """How many of the three panels (thirds of the width) hold pixels of `colour`."""
    image = matplotlib.image.imread(png)
    near = (abs(image[:, :, 0] - colour[0]) < 0.02) & (abs(image[:, :, 1] - colour[1]) < 0.02) & \
           (abs(image[:, :, 2] - colour[2]) < 0.02)
    width = image.shape[1]
    return sum(bool(near[:, k * width // 3:(k + 1) * width // 3].sum() > 10) for k in range(3))


def check_picture(name, png, summary, runs):
    size = png_size(png)
    expect(size == (summary["width_px"], summary["height_px"]) and size == (1100, 360),
           f"{name}: PNG {size} px, stated {summary['width_px']} x {summary['height_px']}")
    expect(os.path.getsize(png) > 10000, f"{name}: PNG of {os.path.getsize(png)} bytes")
    axes = summary["axes"]
    expect([axes[a]["title"] for a in ("train", "eval", "lr")] == ["train loss", "eval loss", "learning rate"] and
           all(axes[a]["xlabel"] == "step" for a in axes) and axes["lr"]["ylabel"] == "lr",
           f"{name}: panel titles and axis labels")
    expect(all(len(axes[a]["curves"]) == runs for a in axes), f"{name}: {runs} curve(s) in every panel")
    for k, colour in enumerate((C0, C1)[:runs]):
        expect(colour_in_panels(png, colour) == 3, f"{name}: run {k + 1}'s colour drawn in all three panels")


def records(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def main():
    global PLOT
    repo, demo_metrics, workdir = sys.argv[1:4]
    PLOT = os.path.join(repo, "launch", "plot_losses.py")
    os.makedirs(workdir, exist_ok=True)

    # 1. The demo's own metrics: every train record and every eval is a point, the ranges are the data's.
    recs = records(demo_metrics)
    train = [r for r in recs if r["type"] == "train"]
    evals = [r for r in recs if r["type"] == "eval"]
    png, summary = plot(workdir, "demo", [demo_metrics])
    if png:
        check_picture("demo", png, summary, 1)
        t, e, lr = (summary["axes"][a]["curves"][0] for a in ("train", "eval", "lr"))
        expect(t["points"] == len(train) >= 10 and t["x_range"] == [train[0]["step"], train[-1]["step"]],
               f"demo: {t['points']} train points over {t['x_range']}, metrics have {len(train)}")
        expect(t["y_range"] == [min(r["loss"] for r in train), max(r["loss"] for r in train)], "demo: train loss range")
        expect(e["points"] == len(evals) == 3 and e["y_range"][0] == min(r["val_loss"] for r in evals),
               f"demo: {e['points']} eval points")
        expect(lr["y_range"][1] == max(r["lr"] for r in train) > 0, "demo: learning rate range")

    # 2. Non-finite losses (null, as lora_dist writes them, and the NaN literal) and a resume that
    # logs steps 30 and 40 again: gaps, and the kept (last) record of a repeated step.
    nan_file = os.path.join(workdir, "nan", "metrics.jsonl")
    os.makedirs(os.path.dirname(nan_file), exist_ok=True)
    lines = [{"type": "eval", "step": 0, "val_loss": 5.0}]
    lines += [{"type": "train", "step": s, "loss": 5.0 - s / 100, "lr": 1e-3} for s in (10, 20, 30, 40)]
    lines += [{"type": "resume", "step": 20, "path": "ckpt"}]
    lines += [{"type": "train", "step": 30, "loss": None, "lr": 1e-3}, {"type": "train", "step": 40, "loss": 4.5, "lr": 1e-3}]
    lines += [{"type": "eval", "step": 50, "val_loss": None}]
    with open(nan_file, "w") as f:
        f.write("\n".join(json.dumps(l) for l in lines) + "\n")
        f.write('{"type": "train", "step": 50, "loss": NaN, "lr": 1e-3}\n')
    png, summary = plot(workdir, "nan", [nan_file])
    if png:
        t, e = summary["axes"]["train"]["curves"][0], summary["axes"]["eval"]["curves"][0]
        expect(t["points"] == 5 and t["finite_points"] == 3 and t["y_range"] == [4.5, 5.0 - 10 / 100],
               f"NaN run: train points {t['points']}, finite {t['finite_points']}, range {t['y_range']} "
               "(expected 5, 3, [4.5, 4.9]: steps 30 and 50 are gaps, step 40 is the resumed run's)")
        expect(e["points"] == 2 and e["finite_points"] == 1, f"NaN run: eval points {e['points']}, finite {e['finite_points']}")
        expect(png_size(png) == (1100, 360), "NaN run: PNG written")

    # 3. One step, one eval: still a picture with a point in each panel.
    one_file = os.path.join(workdir, "one", "metrics.jsonl")
    os.makedirs(os.path.dirname(one_file), exist_ok=True)
    with open(one_file, "w") as f:
        f.write('{"type":"eval","step":1,"val_loss":3.5}\n{"type":"train","step":1,"loss":3.25,"lr":0.002}\n')
    png, summary = plot(workdir, "one", [one_file])
    if png:
        check_picture("one step", png, summary, 1)

    # 4. Two runs overlaid, with their labels.
    png, summary = plot(workdir, "overlay", [demo_metrics, one_file], "--label", "demo", "--label", "one step")
    if png:
        check_picture("overlay", png, summary, 2)
        expect([c["label"] for c in summary["axes"]["train"]["curves"]] == ["demo", "one step"], "overlay: labels")

    # 5. Bad input: exit 2 and a message naming the file (and line).
    bad = os.path.join(workdir, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"type":"train","step":1,"loss":3,"lr":1}\n{"type":"train","step":\n')
    empty = os.path.join(workdir, "empty.jsonl")
    open(empty, "w").close()
    for args, message in (([bad], f"{bad}:2: not a lora_dist metrics record"),
                          ([empty], f"{empty}: no train or eval record"),
                          ([os.path.join(workdir, "missing.jsonl")], "missing.jsonl: cannot read"),
                          ([one_file, "--label", "a", "--label", "b"], "2 --label for 1 metrics files")):
        run = subprocess.run(["/usr/bin/python3", PLOT, *args, "--out", os.path.join(workdir, "bad.png")],
                             capture_output=True, text=True, timeout=120)
        expect(run.returncode == 2 and message in run.stderr, f"bad input {args[0]}: exit {run.returncode}, "
                                                              f"'{run.stderr.strip()}' names '{message}'")

    print(f"plot_losses: {len(problems)} failed" if problems else "plot_losses: all checks passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
