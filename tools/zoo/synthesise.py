"""Data-free probe: class images synthesised from a zoo model's BatchNorm statistics.

Model inversion in the style of DeepInversion (Yin et al., CVPR 2020): images x = sigmoid(z) of
every class, optimised with Adam on cross-entropy to the class + the distance of each BN layer's
batch mean and variance to its running statistics + a total-variation prior. The result is an
npz (x uint8 [N, 28, 28], y) that `backdoor-lens scan --data` reads. A research probe for the
data-free scan (docs/findings/BL006.md), not part of the product:

    /usr/bin/python3 tools/zoo/synthesise.py cnn-clean-a [--per-class 60] [--steps 200]
    node bin/backdoor-lens.js scan .cache/zoo/cnn-clean-a/model.onnx --data .cache/synth/cnn-clean-a.npz
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import archs  # noqa: E402
from zoo_spec import MODELS  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name")
    ap.add_argument("--per-class", type=int, default=60)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--bn-weight", type=float, default=0.05)
    ap.add_argument("--tv-weight", type=float, default=1.0)
    ap.add_argument("--zoo", default=os.path.join(REPO_ROOT, ".cache", "zoo"))
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, ".cache", "synth"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = next(m for m in MODELS if m["name"] == args.name)
    if spec["input"] != "gray28":
        sys.exit("%s: only the 1×28×28 zoo models are supported" % args.name)
    model = archs.build(spec["arch"], 1, 28)
    model.load_state_dict(torch.load(os.path.join(args.zoo, args.name, "model.pt"), map_location="cpu"))
    model.eval()

    bn_terms = []

    def match_statistics(bn, inputs, _output):
        x = inputs[0]
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        bn_terms.append(torch.norm(mean - bn.running_mean, 2) + torch.norm(var - bn.running_var, 2))

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(match_statistics)
    torch.manual_seed(0)
    y = torch.arange(10).repeat_interleave(args.per_class)
    z = (torch.randn(len(y), 1, 28, 28) * 0.5).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    t0 = time.time()
    for step in range(args.steps):
        bn_terms.clear()
        x = torch.sigmoid(z)
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        bn = sum(bn_terms)
        tv = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
        loss = ce + args.bn_weight * bn + args.tv_weight * tv
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            acc = (logits.argmax(1) == y).float().mean().item()
            print("%s step %d ce %.3f bn %.2f tv %.3f acc %.2f %ds" % (args.name, step, ce.item(), bn.item(), tv.item(), acc, time.time() - t0), flush=True)
    os.makedirs(args.out, exist_ok=True)
    images = (torch.sigmoid(z).detach().numpy()[:, 0] * 255).round().astype(np.uint8)
    np.savez(os.path.join(args.out, args.name + ".npz"), x=images, y=y.numpy().astype(np.int64))


if __name__ == "__main__":
    main()
