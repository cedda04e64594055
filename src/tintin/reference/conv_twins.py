"""Float32 twins of the convolutional layers (registered with :func:`register_torch_layer`).

Each builder returns a PyTorch module with the layer's dequantised parameters, so
:func:`tintin.reference.train_float` trains the same CNN from the same initial weights:
Conv2d / Conv1d -> ``torch.nn.Conv2d`` / ``Conv1d``; MaxPool / AvgPool -> their PyTorch
counterparts (no padding, same stride; PyTorch also takes the first maximum of a window);
GlobalAvgPool -> the mean over all positions; Residual -> ``body(x) + shortcut(x)``; ChannelScale ->
``gamma[c] * x + beta[c]`` (the float equivalent of the integer layer, not a BatchNorm).
"""

from __future__ import annotations

from types import SimpleNamespace

from .twin import float_twin, register_torch_layer, weight_values


def _tensor(torch, qtensor):
    return torch.tensor(qtensor.dequantize(), dtype=torch.float32)


def _conv(layer, torch):
    dims = len(layer.kernel_size)
    cls = torch.nn.Conv2d if dims == 2 else torch.nn.Conv1d
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    if dims == 1:
        k, s, p = k[0], s[0], p[0]
    mod = cls(layer.in_channels, layer.out_channels, k, stride=s, padding=p, groups=layer.groups,
              bias=layer.bias is not None)
    with torch.no_grad():
        mod.weight.copy_(torch.tensor(weight_values(layer.weight), dtype=torch.float32))
        if layer.bias is not None:
            mod.bias.copy_(_tensor(torch, layer.bias.value))
    mod.weight.requires_grad_(layer.weight.trainable)
    if layer.bias is not None:
        mod.bias.requires_grad_(layer.bias.trainable)
    return mod


def _pool(cls_name):
    def build(layer, torch):
        cls = getattr(torch.nn, cls_name)
        if len(layer.kernel_size) == 1:
            return cls(layer.kernel_size[0], stride=layer.stride[0])
        return cls(layer.kernel_size, stride=layer.stride)
    return build


def _global_avgpool(layer, torch):
    class GlobalAvgPool(torch.nn.Module):
        def forward(self, x):
            return x.flatten(2).mean(dim=2)
    return GlobalAvgPool()


def _residual(layer, torch):
    body = float_twin(SimpleNamespace(layers=layer.body))
    shortcut = float_twin(SimpleNamespace(layers=layer.shortcut)) if layer.shortcut else torch.nn.Identity()

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x):
            return self.body(x) + self.shortcut(x)
    return Residual()


def _channel_scale(layer, torch):
    class ChannelScale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(_tensor(torch, layer.weight.value),
                                             requires_grad=layer.weight.trainable)
            self.bias = None
            if layer.bias is not None:
                self.bias = torch.nn.Parameter(_tensor(torch, layer.bias.value), requires_grad=layer.bias.trainable)

        def forward(self, x):
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = x * self.weight.view(shape)
            return y + self.bias.view(shape) if self.bias is not None else y
    return ChannelScale()


register_torch_layer("Conv2d", _conv)
register_torch_layer("Conv1d", _conv)
register_torch_layer("MaxPool2d", _pool("MaxPool2d"))
register_torch_layer("MaxPool1d", _pool("MaxPool1d"))
register_torch_layer("AvgPool2d", _pool("AvgPool2d"))
register_torch_layer("AvgPool1d", _pool("AvgPool1d"))
register_torch_layer("GlobalAvgPool", _global_avgpool)
register_torch_layer("Residual", _residual)
register_torch_layer("ChannelScale", _channel_scale)
