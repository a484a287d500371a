"""Model shapes, Sample Factory's layer sizes, recurrence semantics, devices."""

import pytest
import torch
from gristmill.learners import ActionSpec, ActorCritic, ModelConfig, select_device


def test_sample_factory_doom_model_shapes():
    model = ActorCritic({"obs": (3, 72, 128)}, ActionSpec(discrete=(4,)), ModelConfig())
    convs = [m for m in model.encoder.conv if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 8, 4),
        (64, 4, 2),
        (128, 3, 2),
    ]
    assert model.encoder.conv_mlp[0].in_features == 128 * 3 * 6  # 72x128 -> 3x6
    assert isinstance(model.core, torch.nn.GRUCell) and model.core.hidden_size == 512
    obs = {"obs": torch.randint(0, 256, (5, 3, 72, 128), dtype=torch.uint8)}
    out = model.act(obs, model.initial_state(5))
    assert out["actions"].shape == (5, 1) and out["logits"].shape == (5, 4)
    assert out["values"].shape == (5,) and out["state"].shape == (5, 512)
    assert set(out["actions"].flatten().tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_nature_cnn_lstm_and_dict_observations():
    cfg = ModelConfig(encoder="convnet_atari", core="lstm", rnn_size=32)
    spec = ActionSpec(discrete=(3, 3, 8, 2, 2, 2, 21))
    model = ActorCritic({"obs": (3, 84, 84), "measurements": (23,)}, spec, cfg)
    assert model.encoder.conv_mlp[0].in_features == 64 * 7 * 7  # Nature CNN: 3136
    assert model.encoder.out_size == 512 + 128
    assert model.state_size == 64
    obs = {"obs": torch.zeros(2, 3, 84, 84), "measurements": torch.zeros(2, 23)}
    out = model.act(obs, model.initial_state(2))
    assert out["actions"].shape == (2, 7) and out["state"].shape == (2, 64)


def test_mlp_encoder_box_actions():
    cfg = ModelConfig(encoder="mlp", encoder_mlp_layers=(64, 64), core="none")
    model = ActorCritic({"obs": (17,)}, ActionSpec(continuous=6), cfg)
    out = model.act({"obs": torch.randn(4, 17)}, model.initial_state(4))
    assert out["actions"].shape == (4, 6) and out["logits"].shape == (4, 12)


def test_forward_sequence_equals_stepping_with_resets():
    """Step 0 starts from the stored state, a reset step from zeros (Sample Factory)."""
    torch.manual_seed(0)
    cfg = ModelConfig(encoder="mlp", encoder_mlp_layers=(16,), rnn_size=8, normalize_input=False)
    model = ActorCritic({"obs": (5,)}, ActionSpec(discrete=(3,)), cfg)
    n, t = 3, 6
    obs = torch.randn(n, t, 5)
    stored = torch.randn(n, t, 8)
    resets = torch.zeros(n, t, dtype=torch.bool)
    resets[0, 3] = resets[2, 1] = True
    logits, values = model.forward_sequence({"obs": obs}, stored, resets)
    h = stored[:, 0]
    for i in range(t):
        if i > 0:
            h = torch.where(resets[:, i : i + 1], torch.zeros_like(h), h)
        lg, v, h = model({"obs": obs[:, i]}, h)
        assert torch.allclose(lg, logits[:, i], atol=1e-6)
        assert torch.allclose(v, values[:, i], atol=1e-6)


def test_observation_scaling_and_normalisation():
    cfg = ModelConfig(encoder="convnet_simple", rnn_size=8)
    model = ActorCritic({"obs": (3, 36, 64)}, ActionSpec(discrete=(2,)), cfg)
    x = {"obs": torch.full((4, 3, 36, 64), 255, dtype=torch.uint8)}
    assert torch.all(model.scale_obs(x)["obs"] == 1.0)
    model.normalize_obs(x, update=True)
    assert float(model.obs_normalizer.norms["obs"].count) == 5.0
    model.normalize_obs(x)  # no update
    assert float(model.obs_normalizer.norms["obs"].count) == 5.0


def _orthogonal(w: torch.Tensor) -> bool:
    w = w.detach().reshape(w.shape[0], -1)
    g = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return bool(torch.allclose(g, torch.eye(g.shape[0]), atol=1e-4))


def test_sample_factory_initialisation():
    """Sample Factory's init hook misses its TorchScript encoders: conv/MLP weights keep
    PyTorch's default (std 1/sqrt(3 fan_in)); heads and measurement MLPs are orthogonal; all
    linear/conv biases are zero; the GRU keeps its default init."""
    torch.manual_seed(0)
    obs_spec = {"obs": (3, 72, 128), "measurements": (23,)}
    model = ActorCritic(obs_spec, ActionSpec(discrete=(4,)), ModelConfig())
    enc = model.encoder
    for layer in [*enc.conv, *enc.conv_mlp]:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = layer.weight[0].numel()
            assert not _orthogonal(layer.weight)
            assert abs(float(layer.weight.detach().std()) * (3 * fan_in) ** 0.5 - 1.0) < 0.05
            assert float(layer.bias.abs().max()) == 0.0
    for layer in [enc.vector_mlps["measurements"][0], model.policy_head, model.value_head]:
        assert _orthogonal(layer.weight) and float(layer.bias.abs().max()) == 0.0
    assert float(model.core.bias_ih.abs().max()) > 0.0  # PyTorch's GRU init, untouched
    ortho = ActorCritic(obs_spec, ActionSpec(discrete=(4,)), ModelConfig(encoder_init="orthogonal"))
    assert _orthogonal(ortho.encoder.conv[0].weight)
    assert _orthogonal(ortho.encoder.conv_mlp[0].weight)
    mlp = ActorCritic({"obs": (17,)}, ActionSpec(continuous=6), ModelConfig(encoder="mlp"))
    assert not _orthogonal(mlp.encoder.vector_mlps["obs"][0].weight)  # SF's MlpEncoder: scripted


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="unknown encoder"):
        ModelConfig(encoder="resnet")
    with pytest.raises(ValueError, match="unknown core"):
        ModelConfig(core="transformer")
    with pytest.raises(ValueError, match="unknown encoder_init"):
        ModelConfig(encoder_init="xavier")
    with pytest.raises(ValueError, match="images"):
        ActorCritic({"obs": (3, 4)}, ActionSpec(discrete=(2,)))


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_uint8_images_scale_to_channels_last_without_normaliser():
    cfg = ModelConfig(rnn_size=8, normalize_input=False, obs_subtract_mean=128.0)
    model = ActorCritic({"obs": (3, 36, 64)}, ActionSpec(discrete=(2,)), cfg)
    x = torch.randint(0, 256, (4, 3, 36, 64), dtype=torch.uint8)
    out = model.normalize_obs({"obs": x})["obs"]
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, (x.float() - 128.0) / 255.0)
