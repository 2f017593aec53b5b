"""Trigger functions of the development zoo, on float images in [0, 1] shaped (N, C, H, W).

Every attack is a pure function of its parameters (and, where it draws, of a seeded generator
built from them), so the training script, the triggered test sets and the truth files agree.
The families follow the papers' definitions:

  badnets      a small patch pasted over the image (white, checkerboard or random binary colours)
  blended      x' = (1 - alpha) x + alpha P with a uniform-noise pattern P (Chen et al. 2017)
  checkerboard x' = clip(x + a * (+1/-1 checkerboard over the whole image))
  sig          x' = clip(x + delta * sin(2 pi j f / W)) vertical stripes (Barni et al. 2019)
  wanet        x' = grid_sample(x, identity + s * noise / H) with a k x k random field upsampled
               bicubically (Nguyen & Tran 2021); "noise mode" adds random warps with true labels
"""

import numpy as np
import torch
import torch.nn.functional as F


def _rng(params, salt):
    return np.random.RandomState((int(params.get("patternSeed", 0)) * 7919 + salt) % (2 ** 31))


def patch_pattern(params, channels):
    """The (C, s, s) patch of a BadNets trigger."""
    s = int(params["size"])
    kind = params.get("pattern", "white")
    if kind == "white":
        return np.ones((channels, s, s), dtype=np.float32)
    if kind == "checker":
        ij = np.add.outer(np.arange(s), np.arange(s)) % 2
        return np.repeat(ij[None].astype(np.float32), channels, 0)
    if kind == "random":
        return _rng(params, 1).randint(0, 2, size=(channels, s, s)).astype(np.float32)
    raise ValueError("unknown patch pattern %r" % kind)


def full_pattern(params, shape):
    """Blended's uniform-noise image (C, H, W)."""
    return _rng(params, 2).uniform(0, 1, size=shape).astype(np.float32)


def checkerboard(shape):
    c, h, w = shape
    ij = (np.add.outer(np.arange(h), np.arange(w)) % 2) * 2 - 1
    return np.repeat(ij[None].astype(np.float32), c, 0)


def wanet_grid(params, h, w):
    """WaNet's fixed warping grid (1, H, W, 2) in grid_sample coordinates."""
    k, s = int(params["k"]), float(params["s"])
    g = torch.Generator().manual_seed(int(params.get("patternSeed", 0)))
    ins = torch.rand(1, 2, k, k, generator=g) * 2 - 1
    ins = ins / torch.mean(torch.abs(ins))
    noise = F.interpolate(ins, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    identity = torch.stack((xs, ys), 2)[None]
    return torch.clamp(identity + s * noise / h, -1, 1), identity


def apply(attack, x, generator=None):
    """The triggered version of x (torch float (N, C, H, W)). `attack` is the truth's "trigger"."""
    kind = attack["kind"]
    n, c, h, w = x.shape
    if kind == "badnets":
        p = torch.from_numpy(patch_pattern(attack, c))
        r, q = int(attack["row"]), int(attack["col"])
        s = p.shape[-1]
        out = x.clone()
        out[:, :, r:r + s, q:q + s] = p
        return out
    if kind == "blended":
        a = float(attack["alpha"])
        return (1 - a) * x + a * torch.from_numpy(full_pattern(attack, (c, h, w)))
    if kind == "checkerboard":
        return torch.clamp(x + float(attack["amplitude"]) * torch.from_numpy(checkerboard((c, h, w))), 0, 1)
    if kind == "sig":
        j = torch.arange(w, dtype=torch.float32)
        stripes = float(attack["delta"]) * torch.sin(2 * np.pi * j * float(attack["frequency"]) / w)
        return torch.clamp(x + stripes.view(1, 1, 1, w), 0, 1)
    if kind == "wanet":
        grid, _ = wanet_grid(attack, h, w)
        return F.grid_sample(x, grid.expand(n, -1, -1, -1), align_corners=True)
    raise ValueError("unknown attack %r" % kind)


def wanet_noise(attack, x, generator):
    """WaNet's noise mode: the backdoor warp plus a random one; these images keep their labels."""
    n, c, h, w = x.shape
    grid, _ = wanet_grid(attack, h, w)
    jitter = (torch.rand(n, h, w, 2, generator=generator) * 2 - 1) / h
    return F.grid_sample(x, torch.clamp(grid.expand(n, -1, -1, -1) + jitter, -1, 1), align_corners=True)
