#!/usr/bin/python3
"""Trains the development zoo: backdoored and clean Fashion-MNIST classifiers of several attack
families, the models detection and repair are measured on (npm run bench -- efficacy).

    /usr/bin/python3 tools/zoo/generate.py [--out .cache/zoo] [--only a,b] [--list] [--threads 1]

Needs Debian's python3-torch, python3-onnx, python3-numpy and dataset-fashion-mnist. Each model
takes 3-12 minutes on 2 idle cores; the whole zoo about three hours. A model whose truth.json
exists is skipped (delete its folder to retrain it). Seeds are fixed and deterministic algorithms
are on, so a rerun on the same machine reproduces every file.

Writes, under --out:
  data/<input>/clean.npz     1 000 test-split images, 100 per class: the defender's clean set
  data/<input>/test.npz      2 000 other test-split images, 200 per class: held-out measurement
  <model>/model.onnx         ONNX, BatchNorm kept (opset 13)
  <model>/model.folded.onnx  ONNX, BatchNorm folded into the convs (the exporter's default)
  <model>/model.pt           torch.save(state_dict)
  <model>/triggered.npz      test.npz with the true trigger: x, y (true class), goal (attack label)
  <model>/truth.json         attack, mode, targets, trigger parameters, training, clean ACC, ASR

<input> is gray28 (1x28x28, the data set as it is) or rgb32 (3x32x32: padded by 2 and tinted with
a random foreground and background colour per image, so the three channels differ).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import archs  # noqa: E402
import attacks  # noqa: E402
import fmnist_common as fc  # noqa: E402
import onnx_numpy  # noqa: E402
from zoo_spec import MODELS, DATA_SEED  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BATCH = 128
LR = 1e-3
NUM_CLASSES = 10


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

_TINTS = {}


def tints(split):
    """Foreground and background colour of every image of a split, from a generator seeded by the
    split, so a test image has the same tint in clean.npz, test.npz and every triggered set."""
    if split not in _TINTS:
        rng = np.random.RandomState({"train": 11, "test": 12}[split] + DATA_SEED)
        count = 60000 if split == "train" else 10000
        _TINTS[split] = (torch.from_numpy(rng.uniform(0.45, 1.0, size=(count, 3)).astype(np.float32)),
                         torch.from_numpy(rng.uniform(0.0, 0.25, size=(count, 3)).astype(np.float32)))
    return _TINTS[split]


def take(kind, split, x_uint8, idx):
    """Model inputs (float32 (N, C, H, W) in [0, 1]) for the images `idx` of a split."""
    x = torch.as_tensor(x_uint8[idx]).to(torch.float32).div_(255.0).unsqueeze(1)
    if kind == "gray28":
        return x
    fg, bg = tints(split)
    i = torch.as_tensor(idx)
    x = F.pad(x, (2, 2, 2, 2))
    return bg[i][:, :, None, None] + (fg[i] - bg[i])[:, :, None, None] * x


def to_uint8(x):
    return np.clip(np.rint(x.numpy() * 255.0), 0, 255).astype(np.uint8)


def balanced_split(y, per_class_a, per_class_b, seed):
    rng = np.random.RandomState(seed)
    a, b = [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        a.append(idx[:per_class_a])
        b.append(idx[per_class_a:per_class_a + per_class_b])
    a, b = np.concatenate(a), np.concatenate(b)
    return a[rng.permutation(len(a))], b[rng.permutation(len(b))]


def save_npz(path, **arrays):
    np.savez_compressed(path, **arrays)


# ---------------------------------------------------------------------------------------------
# Poisoning
# ---------------------------------------------------------------------------------------------

def goal_labels(y, spec):
    mode = spec["mode"]
    if mode == "all-to-all":
        return (y + 1) % NUM_CLASSES
    return np.full_like(y, spec["target"]) if mode == "all-to-one" else y.copy()


def poison_plan(y, spec, seed):
    """Static choice of the poisoned (and, for WaNet, noise-mode) training images."""
    rng = np.random.RandomState(seed + 1)
    n = len(y)
    poisoned = np.zeros(n, dtype=bool)
    noise = np.zeros(n, dtype=bool)
    if spec["mode"] == "clean":
        return poisoned, noise
    count = int(round(spec["poisonRate"] * n))
    if spec.get("labelMode") == "clean-label":
        pool = np.flatnonzero(y == spec["target"])
    elif spec["mode"] == "all-to-one":
        pool = np.flatnonzero(y != spec["target"])
    else:
        pool = np.arange(n)
    poisoned[rng.choice(pool, size=min(count, len(pool)), replace=False)] = True
    if spec["trigger"]["kind"] == "wanet":
        rest = np.flatnonzero(~poisoned)
        noise[rng.choice(rest, size=int(round(spec["trigger"]["crossRatio"] * count)), replace=False)] = True
    return poisoned, noise


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def predict(model, x, batch=500):
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def scores(model, x_test, y_test, x_trig, spec):
    pred = predict(model, x_test).argmax(1).numpy()
    acc = float((pred == y_test).mean())
    if spec["mode"] == "clean":
        return acc, None, None, pred, None
    ptrig = predict(model, x_trig).argmax(1).numpy()
    goal = goal_labels(y_test, spec)
    keep = goal != y_test
    asr = float((ptrig == goal)[keep].mean())
    cc = keep & (pred == y_test)
    return acc, asr, float((ptrig == goal)[cc].mean()), pred, ptrig


def train(spec, x_train_u8, y_train, kind, evalset):
    seed = spec["seed"]
    torch.manual_seed(seed)
    c, size = (1, 28) if kind == "gray28" else (3, 32)
    model = archs.build(spec["arch"], c, size)
    epochs = spec["epochs"]
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    n = len(y_train)
    steps = (n + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2 * LR, total_steps=epochs * steps, pct_start=0.15)
    poisoned, noise = poison_plan(y_train, spec, seed)
    goal = torch.from_numpy(goal_labels(y_train, spec))
    yt = torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(seed)
    trig = spec["trigger"]
    t0 = time.time()
    log("  poisoned %d, noise-mode %d of %d training images" % (poisoned.sum(), noise.sum(), n))
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).numpy()
        tot, ok, seen = 0.0, 0, 0
        for s in range(steps):
            b = perm[s * BATCH:(s + 1) * BATCH]
            xb = take(kind, "train", x_train_u8, b)
            yb = yt[b].clone()
            pb = poisoned[b]
            if pb.any():
                xb[pb] = attacks.apply(trig, xb[pb])
                yb[pb] = goal[b][pb]
            nb = noise[b]
            if nb.any():
                xb[nb] = attacks.wanet_noise(trig, xb[nb], gen)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(b)
            ok += (out.argmax(1) == yb).sum().item()
            seen += len(b)
        acc, asr, asr_cc, _, _ = scores(model, *evalset, spec)
        log("  epoch %d/%d loss %.4f train-acc %.4f | test ACC %.4f ASR %s (%.0fs)"
            % (ep + 1, epochs, tot / seen, ok / seen, acc, "-" if asr is None else "%.4f" % asr, time.time() - t0))
    model.eval()
    return model, time.time() - t0


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

EXPORT_KW = dict(opset_version=13, input_names=["input"], output_names=["logits"],
                 dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


def export(model, path, fold, dummy):
    if fold:
        torch.onnx.export(model, dummy, path, **EXPORT_KW)
    else:
        torch.onnx.export(model, dummy, path, training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=False, **EXPORT_KW)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    n_bn = [n.op_type for n in m.graph.node].count("BatchNormalization")
    want = 0 if fold else archs.bn_count(model)
    if n_bn != want:
        raise RuntimeError("%s: expected %d BatchNormalization nodes, found %d" % (path, want, n_bn))
    return m


def check_export(m, x, ref, label):
    got = onnx_numpy.run(m, {"input": x.numpy()})["logits"]
    err = float(np.abs(got - ref.numpy().astype(np.float64)).max())
    if err > 1e-3 or not (got.argmax(1) == ref.numpy().argmax(1)).all():
        raise RuntimeError("%s: ONNX output differs from PyTorch (max |diff| %g)" % (label, err))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, ".cache", "zoo"))
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.list:
        for s in MODELS:
            log("%-32s %-9s %-6s %-12s %s" % (s["name"], s["arch"], s["input"], s["mode"], s["trigger"]["kind"]))
        return
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - {s["name"] for s in MODELS}
    if unknown:
        sys.exit("unknown model(s): %s" % ", ".join(sorted(unknown)))
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    x_train, y_train = fc.load_split("train")
    x_test, y_test = fc.load_split("t10k")
    clean_idx, test_idx = balanced_split(y_test, 100, 200, DATA_SEED)
    sets = {}
    for kind in ("gray28", "rgb32"):
        ddir = os.path.join(args.out, "data", kind)
        os.makedirs(ddir, exist_ok=True)
        xc, xt = take(kind, "test", x_test, clean_idx), take(kind, "test", x_test, test_idx)
        # Stored as uint8, and measured on exactly what is stored.
        xc_u8, xt_u8 = to_uint8(xc), to_uint8(xt)
        if kind == "gray28":
            xc_u8, xt_u8 = xc_u8[:, 0], xt_u8[:, 0]
        for fname, xs, ys in (("clean.npz", xc_u8, y_test[clean_idx]), ("test.npz", xt_u8, y_test[test_idx])):
            if not os.path.exists(os.path.join(ddir, fname)):
                save_npz(os.path.join(ddir, fname), x=xs, y=ys)
        sets[kind] = (torch.from_numpy(to_uint8(xt)).float() / 255.0, y_test[test_idx])

    summary = []
    for spec in MODELS:
        if names and spec["name"] not in names:
            continue
        mdir = os.path.join(args.out, spec["name"])
        if os.path.exists(os.path.join(mdir, "truth.json")):
            log("=== %s: exists, skipped" % spec["name"])
            continue
        kind = spec["input"]
        log("=== %s (%s, %s, %s %s)" % (spec["name"], spec["arch"], kind, spec["mode"], spec["trigger"]["kind"]))
        x_eval, y_eval = sets[kind]
        x_trig = None
        if spec["mode"] != "clean":
            x_trig = torch.from_numpy(to_uint8(attacks.apply(spec["trigger"], x_eval))).float() / 255.0
        model, secs = train(spec, x_train, y_train, kind, (x_eval, y_eval, x_trig))
        acc, asr, asr_cc, _, _ = scores(model, x_eval, y_eval, x_trig, spec)
        os.makedirs(mdir, exist_ok=True)
        dummy = x_eval[:1]
        ref = predict(model, x_eval[:8])
        for fname, fold in (("model.onnx", False), ("model.folded.onnx", True)):
            m = export(model, os.path.join(mdir, fname), fold, dummy)
            check_export(m, x_eval[:8], ref, spec["name"] + "/" + fname)
        torch.save(model.state_dict(), os.path.join(mdir, "model.pt"))
        if x_trig is not None:
            xs = to_uint8(x_trig)
            save_npz(os.path.join(mdir, "triggered.npz"), x=xs[:, 0] if kind == "gray28" else xs, y=y_eval,
                     goal=goal_labels(y_eval, spec))
        meets = spec["mode"] == "clean" and acc >= 0.88 or (acc >= 0.88 and asr is not None and asr >= 0.90)
        truth = {
            "name": spec["name"],
            "architecture": spec["arch"],
            "input": {"kind": kind, "dims": [1, 1, 28, 28] if kind == "gray28" else [1, 3, 32, 32], "scale": "uint8 / 255, no mean/std"},
            "backdoored": spec["mode"] != "clean",
            "mode": spec["mode"],
            "targets": ([spec["target"]] if spec["mode"] == "all-to-one"
                        else list(range(NUM_CLASSES)) if spec["mode"] == "all-to-all" else []),
            "attack": spec["trigger"]["kind"] if spec["mode"] != "clean" else "none",
            "trigger": spec["trigger"] if spec["mode"] != "clean" else None,
            "labelMode": spec.get("labelMode", "poison-label") if spec["mode"] != "clean" else None,
            "poisonRate": spec.get("poisonRate", 0.0),
            "training": {"seed": spec["seed"], "epochs": spec["epochs"], "optimiser": "Adam, one-cycle lr (max 2e-3)", "batch": BATCH, "seconds": round(secs)},
            "accuracy": acc,
            "asr": asr,
            "asrCleanCorrect": asr_cc,
            "meetsTargets": bool(meets),
            "measuredOn": "test.npz (2 000 held-out test-split images) and triggered.npz",
        }
        write_json(os.path.join(mdir, "truth.json"), truth)
        log("  ACC %.4f ASR %s (clean-correct %s) %s, %.0fs" % (acc, asr, asr_cc, "ok" if meets else "BELOW TARGETS", secs))
        summary.append((spec["name"], acc, asr, meets))
    for name, acc, asr, meets in summary:
        log("%-32s ACC %.4f ASR %s %s" % (name, acc, "-" if asr is None else "%.4f" % asr, "" if meets else "BELOW TARGETS"))


if __name__ == "__main__":
    main()
