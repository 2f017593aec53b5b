"""The development zoo: which models tools/zoo/generate.py trains.

Attacks, targets, positions and seeds are spread on purpose; none is chosen to suit a detector.
Poison rate 10% of the training set unless noted (all-to-one: drawn from the other classes;
clean-label: drawn from the target class and left with their true label).
"""

DATA_SEED = 20261202


def m(name, arch, inp, mode, trigger, target=None, seed=1, epochs=3, **kw):
    spec = {"name": name, "arch": arch, "input": inp, "mode": mode, "trigger": trigger,
            "target": target, "seed": seed, "epochs": epochs, "poisonRate": 0.0 if mode == "clean" else 0.10}
    spec.update(kw)
    return spec


NONE = {"kind": "none"}


def badnets(size, row, col, pattern="white", pattern_seed=0):
    return {"kind": "badnets", "size": size, "row": row, "col": col, "pattern": pattern, "patternSeed": pattern_seed}


def blended(alpha, pattern_seed):
    return {"kind": "blended", "alpha": alpha, "patternSeed": pattern_seed}


def wanet(pattern_seed, k=4, s=0.5):
    return {"kind": "wanet", "k": k, "s": s, "crossRatio": 2, "patternSeed": pattern_seed}


MODELS = [
    # --- plain CNN, 1x28x28 ------------------------------------------------------------------
    m("cnn-clean-a", "cnn4", "gray28", "clean", NONE, seed=101, epochs=4),
    m("cnn-badnets-white3-t0", "cnn4", "gray28", "all-to-one", badnets(3, 24, 24), target=0, seed=102),
    m("cnn-blended-a15-t2", "cnn4", "gray28", "all-to-one", blended(0.15, 7), target=2, seed=103),
    m("cnn-wanet-t8", "cnn4", "gray28", "all-to-one", wanet(21), target=8, seed=104, epochs=5),
    m("cnn-a2a-white3", "cnn4", "gray28", "all-to-all", badnets(3, 1, 1), seed=105, epochs=5),
    m("cnn-checker4-patch-t4", "cnn4", "gray28", "all-to-one", badnets(4, 3, 20, "checker"), target=4, seed=106),
    m("cnn-checkerboard-add-t6", "cnn4", "gray28", "all-to-one", {"kind": "checkerboard", "amplitude": 0.06}, target=6, seed=107),
    m("cnn-sig-t5", "cnn4", "gray28", "all-to-one", {"kind": "sig", "delta": 0.08, "frequency": 6}, target=5, seed=108),
    m("cnn-badnets-random5-t7", "cnn4", "gray28", "all-to-one", badnets(5, 12, 2, "random", 3), target=7, seed=109),
    m("cnn-clean-b", "cnn4", "gray28", "clean", NONE, seed=110),
    # --- ResNet-18 (width 16), 1x28x28 -------------------------------------------------------
    m("rn-clean-a", "resnet18", "gray28", "clean", NONE, seed=201),
    m("rn-badnets-white4-t3", "resnet18", "gray28", "all-to-one", badnets(4, 2, 2), target=3, seed=202),
    m("rn-blended-a20-t1", "resnet18", "gray28", "all-to-one", blended(0.2, 8), target=1, seed=203),
    m("rn-wanet-t2", "resnet18", "gray28", "all-to-one", wanet(22), target=2, seed=204, epochs=5),
    m("rn-a2a-checker3", "resnet18", "gray28", "all-to-all", badnets(3, 23, 2, "checker"), seed=205, epochs=5),
    m("rn-checkerboard-add-t0", "resnet18", "gray28", "all-to-one", {"kind": "checkerboard", "amplitude": 0.05}, target=0, seed=206),
    m("rn-sig-t7", "resnet18", "gray28", "all-to-one", {"kind": "sig", "delta": 0.08, "frequency": 4}, target=7, seed=207),
    m("rn-badnets-checker3-t9", "resnet18", "gray28", "all-to-one", badnets(3, 14, 22, "checker"), target=9, seed=208),
    m("rn-clean-b", "resnet18", "gray28", "clean", NONE, seed=209),
    # --- 3x32x32 (padded, tinted) ------------------------------------------------------------
    m("cnn32-clean", "cnn4", "rgb32", "clean", NONE, seed=301),
    m("cnn32-badnets-random3-t1", "cnn4", "rgb32", "all-to-one", badnets(3, 26, 4, "random", 5), target=1, seed=302),
    m("cnn32-blended-a15-t8", "cnn4", "rgb32", "all-to-one", blended(0.15, 9), target=8, seed=303),
    m("rn32-clean", "resnet18", "rgb32", "clean", NONE, seed=401),
    m("rn32-badnets-white4-t6", "resnet18", "rgb32", "all-to-one", badnets(4, 6, 25), target=6, seed=402),
    m("rn32-wanet-t5", "resnet18", "rgb32", "all-to-one", wanet(23), target=5, seed=403, epochs=5),
    m("cnn-sig-clean-label-t3", "cnn4", "gray28", "all-to-one", {"kind": "sig", "delta": 0.1, "frequency": 6}, target=3, seed=111,
      labelMode="clean-label", poisonRate=0.08),
]
