"""The zoo's two architectures, both with BatchNorm after every conv.

cnn4      a plain 4-conv CNN: [conv-bn-relu] x2, max-pool, [conv-bn-relu] x2, max-pool, linear
          (widths 32, 32, 64, 64)
resnet18  the CIFAR-style ResNet-18 (3x3 stem, no stem pooling, four stages of two basic blocks
          at widths w, 2w, 4w, 8w, global average pooling, linear head)

Both take C x H x W input for any C and any H, W divisible by 4.
"""

import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from resnet18_cifar import BasicBlock  # noqa: E402


class CNN4(nn.Module):
    def __init__(self, channels=1, size=28, widths=(32, 32, 64, 64), num_classes=10):
        super().__init__()
        cin = channels
        for i, w in enumerate(widths, 1):
            setattr(self, "conv%d" % i, nn.Conv2d(cin, w, 3, padding=1))
            setattr(self, "bn%d" % i, nn.BatchNorm2d(w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(cin * (size // 4) ** 2, num_classes)

    def forward(self, x):
        for i in range(1, 5):
            x = F.relu(getattr(self, "bn%d" % i)(getattr(self, "conv%d" % i)(x)))
            if i in (2, 4):
                x = self.pool(x)
        return self.fc(torch.flatten(x, 1))


class ResNet18(nn.Module):
    def __init__(self, channels=1, size=28, width=16, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for s, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2)), 1):
            cout = width * mult
            setattr(self, "layer%d" % s, nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def build(arch, channels, size):
    if arch == "cnn4":
        return CNN4(channels, size)
    if arch == "resnet18":
        return ResNet18(channels, size)
    raise ValueError("unknown architecture %r" % arch)


def bn_count(model):
    return sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
