"""A tiny convolutional deraining network with fixed random weights, for tests only.

It is never offered to users: it is registered only by tests (the `testnet` fixture) or, for the
subprocess end-to-end tests, through DERAIN_PLUGINS=tests.tinynet. It is fully convolutional with a
9x9 receptive field, so tiled and whole-image outputs agree except for float rounding.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from derain_cli.models import Architecture, Contract, ModelEntry, WeightSource

WEIGHTS = Path(__file__).resolve().parent / "assets" / "testnet.pt"


class TinyNet(nn.Module):
    def __init__(self, channels: int = 8):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        r = self.tail(self.act(self.body(self.act(self.head(x)))))
        return x - 0.1 * torch.tanh(r)


def make_weights(path: Path = WEIGHTS) -> None:
    torch.manual_seed(1234)
    net = TinyNet()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)


ARCHITECTURE = Architecture(
    name="testnet",
    title="TestNet",
    builder=TinyNet,
    default_config={"channels": 8},
    contract=Contract(channels="RGB", value_range=(0.0, 1.0), size_multiple=4, pad_mode="reflect",
                      bytes_per_pixel=256),
    paper="none (tests only)",
    default_variant="random",
)

MODELS = [
    ModelEntry(arch="testnet", variant="random", trained_on="nothing: fixed random weights",
               source=WeightSource(kind="file", filename="testnet.pt", path=str(WEIGHTS))),
    # a variant whose weights the user downloads by hand and imports (like the Baidu releases)
    ModelEntry(arch="testnet", variant="manual", trained_on="nothing: for import tests",
               source=WeightSource(kind="manual", filename="testnet-manual.pt",
                                   page="https://example.org/testnet", password="abcd",
                                   instructions="download testnet-manual.pt")),
]

if not WEIGHTS.exists():  # pragma: no cover - the file is committed
    make_weights()
