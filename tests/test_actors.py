"""Off-policy actors: shapes, bounds, the squashed log-density, gradients, rebuild and compile."""

from __future__ import annotations

import json

import pytest
import torch
import torch._dynamo
import torch.nn as nn
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from policyopt.nets import DeterministicActor, SquashedGaussianActor

OBS, ACT, B = 5, 3, 64


def test_squashed_gaussian_shapes_and_bounds():
    actor = SquashedGaussianActor(OBS, ACT, hidden=(32, 32))
    obs = torch.randn(B, OBS) * 100  # large inputs saturate tanh; bounds must still hold
    a, lp = actor.sample(obs)
    assert a.shape == (B, ACT) and lp.shape == (B,)
    assert torch.isfinite(lp).all()
    for x in (a, actor.act(obs), actor.act(obs, deterministic=True), actor(obs)):
        assert x.shape == (B, ACT) and x.abs().max() <= 1.0
    _, log_std = actor.mean_log_std(obs)
    assert log_std.min() >= -5.0 and log_std.max() <= 2.0


def test_log_std_squash_formula():
    actor = SquashedGaussianActor(OBS, ACT, hidden=(16,), log_std_min=-4.0, log_std_max=1.0)
    obs = torch.randn(B, OBS)
    raw = actor.log_std_head(actor.trunk(obs))
    _, log_std = actor.mean_log_std(obs)
    torch.testing.assert_close(log_std, -4.0 + 0.5 * 5.0 * (torch.tanh(raw) + 1.0))


def test_log_prob_matches_torch_distributions():
    actor = SquashedGaussianActor(OBS, ACT, hidden=(32, 32)).double()  # float64 so atanh(a) recovers u
    obs = torch.randn(B, OBS, dtype=torch.float64)
    a, lp = actor.sample(obs)
    mean, log_std = actor.mean_log_std(obs)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    ref = dist.log_prob(a).sum(-1)
    # the actor adds 1e-6 inside log(1 - tanh^2), which shifts the density by ~1e-6 per dim
    torch.testing.assert_close(lp, ref, rtol=0, atol=1e-4)


def test_gradient_reaches_both_heads_through_rsample():
    actor = SquashedGaussianActor(OBS, ACT, hidden=(32,))
    a, _ = actor.sample(torch.randn(B, OBS))
    a.square().sum().backward()  # actions only: the log-std head is reached through the reparameterisation
    for head in (actor.mean_head, actor.log_std_head):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    actor.zero_grad()
    _, lp = actor.sample(torch.randn(B, OBS))
    lp.mean().backward()
    assert actor.log_std_head.weight.grad.abs().sum() > 0


def test_act_deterministic_is_tanh_mean_and_stochastic_act_samples():
    actor = SquashedGaussianActor(OBS, ACT, hidden=(32,))
    obs = torch.randn(B, OBS)
    mean, _ = actor.mean_log_std(obs)
    torch.testing.assert_close(actor.act(obs, deterministic=True), torch.tanh(mean))
    torch.testing.assert_close(actor(obs, deterministic=True), torch.tanh(mean))
    assert not torch.equal(actor.act(obs), actor.act(obs))


def test_deterministic_actor():
    actor = DeterministicActor(OBS, ACT, hidden=(32, 32))
    obs = torch.randn(B, OBS) * 100
    a = actor(obs)
    assert a.shape == (B, ACT) and a.abs().max() <= 1.0
    torch.testing.assert_close(actor.act(obs), a)
    torch.testing.assert_close(actor.act(obs, deterministic=False), a)
    torch.testing.assert_close(a, torch.tanh(actor.head(actor.trunk(obs))))
    actor(torch.randn(B, OBS)).sum().backward()  # TD3's actor loss differentiates forward
    assert actor.trunk[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [SquashedGaussianActor, DeterministicActor])
def test_default_linear_init_not_orthogonal(cls):
    torch.manual_seed(0)
    actor = cls(OBS, ACT, hidden=(32, 16))
    torch.manual_seed(0)
    ref = nn.Linear(OBS, 32)  # the first layer built, with PyTorch's default init
    torch.testing.assert_close(actor.trunk[0].weight, ref.weight, rtol=0, atol=0)
    torch.testing.assert_close(actor.trunk[0].bias, ref.bias, rtol=0, atol=0)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (SquashedGaussianActor, dict(hidden=(32, 16), activation="tanh", log_std_min=-3.0, log_std_max=1.5)),
        (SquashedGaussianActor, dict()),
        (DeterministicActor, dict(hidden=(8,), activation="elu")),
        (DeterministicActor, dict(hidden=())),
    ],
)
def test_init_kwargs_rebuild(cls, kwargs):
    actor = cls(OBS, ACT, **kwargs)
    init = actor.init_kwargs()
    assert (actor.obs_dim, actor.act_dim) == (OBS, ACT)
    clone = cls(**json.loads(json.dumps(init)))  # checkpoints store them as plain JSON
    assert clone.init_kwargs() == init
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in actor.state_dict().items()}
    clone.load_state_dict(actor.state_dict())
    obs = torch.randn(4, OBS)
    torch.testing.assert_close(clone.act(obs, deterministic=True), actor.act(obs, deterministic=True))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activation=nn.ReLU), "activation"),
        (dict(activation="nope"), "activation"),
        (dict(log_std_min=2.0, log_std_max=2.0), "log_std_min"),
        (dict(hidden=(0,)), "hidden"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SquashedGaussianActor(OBS, ACT, **kwargs)


@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="torch.compile is unavailable on this Python/torch")
@pytest.mark.compile
def test_actors_run_under_fullgraph_compile():
    # aot_eager traces the full forward and backward graphs (what fullgraph is about) in about a
    # second; inductor's C++ codegen would add ~20 s on CPU and check nothing more here.
    torch._dynamo.reset()
    sac = SquashedGaussianActor(OBS, ACT, hidden=(16,))
    td3 = DeterministicActor(OBS, ACT, hidden=(16,))
    obs = torch.randn(8, OBS)

    def step(o: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a, lp = sac.sample(o)
        return a, lp, sac.act(o, deterministic=True), td3(o), td3.act(o)

    a, lp, det, td3_a, td3_act = torch.compile(step, fullgraph=True, backend="aot_eager")(obs)
    assert a.shape == (8, ACT) and lp.shape == (8,) and a.abs().max() <= 1.0
    torch.testing.assert_close(det, sac.act(obs, deterministic=True))
    torch.testing.assert_close(td3_a, td3(obs))
    torch.testing.assert_close(td3_act, td3_a)
    lp.sum().backward()  # the compiled graph is differentiable
    assert sac.log_std_head.weight.grad is not None
