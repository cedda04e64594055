"""Small float models trained for a few seconds on digits, shared by the interop tests."""

import pytest

from tintin import data


@pytest.fixture(scope="session")
def digits():
    return data.load("digits")


def _train(net, ds, epochs=10, seed=0):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x = torch.tensor(ds.real(ds.x_train), dtype=torch.float32)
    y = torch.tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net.eval()


def mlp_net():
    import torch

    torch.manual_seed(1)
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def lenet_net():
    import torch

    """LeNet-5 class CNN for 8x8 digits (conv 3x3 in place of 5x5), with a BatchNorm to fold."""
    torch.manual_seed(2)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def dscnn_net():
    import torch

    """Depthwise-separable CNN (DS-CNN style) with BatchNorm after every conv."""
    torch.manual_seed(3)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def transfer_dscnn_net():
    """The depthwise-separable CNN of the transfer bench (bench/transfer.py): no BatchNorm, an
    average pool before the classifier."""
    import torch

    torch.manual_seed(5)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),      # depthwise
                         nn.Conv2d(8, 16, 1), nn.ReLU(),                          # pointwise
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 10))


def res_net():
    """Stem conv, one residual block with an identity shortcut, mean over positions, linear head."""
    import torch

    class ResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(4)
            self.stem = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.a = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.b = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            h = torch.relu(self.stem(x))
            h = torch.relu(self.b(torch.relu(self.a(h))) + h)
            return self.fc(h.mean((2, 3)))
    return ResNet()


EPOCHS = {"dscnn": 25}
BUILDERS = {"mlp": mlp_net, "lenet": lenet_net, "dscnn": dscnn_net, "transfer_dscnn": transfer_dscnn_net,
            "res": res_net}


@pytest.fixture(scope="session")
def trained(digits):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _train(BUILDERS[name](), digits, epochs=EPOCHS.get(name, 10))
        return cache[name]
    return get


class _Series:
    """Digits as float series of 8 channels by 8 steps (the rows of each image), for 1-D models."""

    def __init__(self, ds):
        self.x_train, self.y_train, self.real = ds.x_train.reshape(-1, 8, 8), ds.y_train, ds.real


@pytest.fixture(scope="session")
def trained_conv1d(digits):
    """A 1-D CNN (conv, max pool, depthwise conv, linear) trained on the digits series."""
    import torch

    torch.manual_seed(6)
    nn = torch.nn
    net = nn.Sequential(nn.Conv1d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
                        nn.Conv1d(16, 16, 3, padding=1, groups=16), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10))
    return _train(net, _Series(digits), epochs=10)


@pytest.fixture(scope="session")
def lenet_import(trained, digits):
    from tintin.interop import import_model

    return import_model(trained("lenet"), digits, calib_samples=32)


