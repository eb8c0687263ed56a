"""Multi-layer perceptrons with the orthogonal initialisation used by on-policy RL.

Orthogonal weights with gain sqrt(2) on hidden layers and a small gain on output layers,
zero biases: the "network initialisation" detail of Engstrom et al. 2020 ("Implementation
Matters in Deep Policy Gradients") as in OpenAI baselines.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch.nn as nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
}


def activation_class(activation: str | type[nn.Module]) -> type[nn.Module]:
    """Resolve an activation given by name (see ``ACTIVATIONS``) or as an ``nn.Module`` class."""
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation.lower()]
        except KeyError:
            raise ValueError(
                f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)} or an nn.Module class"
            ) from None
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation
    raise ValueError(f"activation must be a name in {sorted(ACTIVATIONS)} or an nn.Module class, got {activation!r}")


def orthogonal_init(layer: nn.Linear, gain: float) -> nn.Linear:
    """Orthogonal weight with ``gain`` and zero bias, in place (Saxe et al. 2014; Engstrom et al. 2020)."""
    nn.init.orthogonal_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def mlp_body(
    in_dim: int,
    hidden: Sequence[int] = (64, 64),
    activation: str | type[nn.Module] = "tanh",
    layer_norm: bool = False,
    hidden_gain: float = math.sqrt(2),
) -> nn.Sequential:
    """The hidden part of an MLP: ``[Linear -> (LayerNorm) -> act] * len(hidden)``.

    Its output width is ``hidden[-1]`` (``in_dim`` when ``hidden`` is empty, i.e. the identity),
    so a head can be put on top of it.
    """
    act = activation_class(activation)
    layers: list[nn.Module] = []
    prev = int(in_dim)
    for width in hidden:
        layers.append(orthogonal_init(nn.Linear(prev, int(width)), hidden_gain))
        if layer_norm:
            layers.append(nn.LayerNorm(int(width)))
        layers.append(act())
        prev = int(width)
    return nn.Sequential(*layers)


def body_out_dim(in_dim: int, hidden: Sequence[int]) -> int:
    """Output width of ``mlp_body(in_dim, hidden)``."""
    return int(hidden[-1]) if len(hidden) > 0 else int(in_dim)


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (64, 64),
    activation: str | type[nn.Module] = "tanh",
    layer_norm: bool = False,
    hidden_gain: float = math.sqrt(2),
    out_gain: float = 1.0,
) -> nn.Sequential:
    """An MLP ``in_dim -> hidden... -> out_dim`` with orthogonal init and zero biases.

    Hidden layers get ``hidden_gain``, the output layer ``out_gain`` (baselines uses 0.01 for
    policy outputs and 1.0 for values; Engstrom et al. 2020). No activation on the output.
    """
    body = mlp_body(in_dim, hidden, activation, layer_norm, hidden_gain)
    out = orthogonal_init(nn.Linear(body_out_dim(in_dim, hidden), int(out_dim)), out_gain)
    return nn.Sequential(*body, out)


def default_init(module: nn.Module) -> nn.Module:
    """Reset every ``nn.Linear`` in ``module`` to PyTorch's default initialisation, in place.

    Off-policy critics use it (CleanRL and SB3 keep the default init for SAC and TD3); the
    orthogonal init above is an on-policy detail.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.reset_parameters()
    return module
