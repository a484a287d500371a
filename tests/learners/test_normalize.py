"""Running mean/std against a NumPy replay of Sample Factory's update rule."""

import numpy as np
import pytest
import torch
from gristmill.learners import RunningMeanStd


def numpy_rms(batches, shape):
    mean, var, count = np.zeros(shape), np.ones(shape), 1.0
    for x in batches:
        bm, bv, n = x.mean(0), x.var(0, ddof=1), x.shape[0]
        delta = bm - mean
        tot = count + n
        mean = mean + delta * n / tot
        var = (var * count + bv * n + delta**2 * count * n / tot) / tot
        count = tot
    return mean, var, count


def test_update_matches_numpy_and_converges():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(64, 4)) for _ in range(50)]
    rms = RunningMeanStd((4,))
    for b in batches:
        rms.update(torch.from_numpy(b).float())
    mean, var, count = numpy_rms([b.astype(np.float32).astype(np.float64) for b in batches], (4,))
    assert np.allclose(rms.mean.numpy(), mean, atol=1e-6)
    assert np.allclose(rms.var.numpy(), var, atol=1e-6)
    assert float(rms.count) == count == 1 + 50 * 64
    allx = np.concatenate(batches)
    assert np.allclose(rms.mean.numpy(), allx.mean(0), atol=0.01)
    # The prior (mean 0, var 1, count 1) still weighs in a little after 3200 samples.
    assert np.allclose(rms.var.numpy(), allx.var(0), rtol=0.03)


def test_normalize_clips_and_denormalize_inverts():
    rms = RunningMeanStd((1,))
    rms.update(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    x = torch.tensor([2.5, 3.0, 4.0])
    y = rms.normalize(x)
    std = float(np.sqrt(rms.var.item() + 1e-5))
    assert torch.allclose(y, (x - rms.mean.float()) / std, atol=1e-6)
    assert torch.allclose(rms.denormalize(y), x, atol=1e-5)
    assert float(rms.normalize(torch.tensor([1e6]))) == 5.0  # clip at 5


def test_forward_updates_only_in_training_mode():
    rms = RunningMeanStd((2,))
    rms.eval()
    rms(torch.ones(8, 2) * 7)
    assert float(rms.count) == 1.0
    rms.train()
    rms(torch.ones(8, 2) * 7)
    assert float(rms.count) == 9.0


def test_per_channel_statistics():
    rms = RunningMeanStd((3, 2, 2), per_channel=True)
    x = torch.arange(3.0).view(1, 3, 1, 1).expand(10, 3, 2, 2)
    rms.update(x)
    assert rms.mean.shape == (3,)
    # Sample Factory counts samples (dim 0), not elements, even per channel.
    assert torch.allclose(rms.mean.float(), torch.arange(3.0) * 10 / 11)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"expects \[N, \*\(4,\)\]"):
        RunningMeanStd((4,)).update(torch.zeros(3, 5))


def test_uint8_images_take_the_exact_kernel_path():
    # uint8 CPU images: integer moments and a channels-last affine; same numbers as the
    # float32 torch route, which the float input takes.
    rng = np.random.default_rng(1)
    shape = (3, 5, 7)
    fast, slow = RunningMeanStd(shape), RunningMeanStd(shape)
    for _ in range(4):
        x = torch.from_numpy(rng.integers(0, 256, (33, *shape), dtype=np.uint8))
        fast.update(x, subtract=10.0, scale=1 / 255)
        slow.update(x.float(), subtract=10.0, scale=1 / 255)
    np.testing.assert_allclose(fast.mean.numpy(), slow.mean.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fast.var.numpy(), slow.var.numpy(), rtol=1e-5, atol=1e-9)
    assert float(fast.count) == float(slow.count)

    x = torch.from_numpy(rng.integers(0, 256, (6, *shape), dtype=np.uint8))
    out = fast.affine(x, 10.0, 1 / 255)
    ref = slow.affine(x.float(), 10.0, 1 / 255)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    strided = torch.from_numpy(rng.integers(0, 256, (6, 2, *shape), dtype=np.uint8))[:, 1]
    torch.testing.assert_close(
        fast.affine(strided, 10.0, 1 / 255),
        slow.affine(strided.float(), 10.0, 1 / 255),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("image", [True, False])
def test_affine_cache_follows_every_change_of_the_statistics(image):
    """affine() caches its (a, b) between calls; an update, a load_state_dict, an in-place
    edit, a replaced buffer or other subtract/scale arguments must each give what a fresh
    normaliser with the same statistics gives."""
    rng = np.random.default_rng(2)
    shape = (3, 4, 5)

    def batch(n=9):
        x = torch.from_numpy(rng.integers(0, 256, (n, *shape), dtype=np.uint8))
        return x if image else x.float()

    def fresh(rms):
        ref = RunningMeanStd(shape)
        ref.load_state_dict(rms.state_dict())
        return ref

    rms = RunningMeanStd(shape)
    x = batch()
    first = rms.affine(x, 10.0, 1 / 255)
    torch.testing.assert_close(rms.affine(x, 10.0, 1 / 255), first)  # served from the cache
    rms.update(batch(), 10.0, 1 / 255)
    after_update = rms.affine(x, 10.0, 1 / 255)
    assert not torch.allclose(after_update, first)
    torch.testing.assert_close(after_update, fresh(rms).affine(x, 10.0, 1 / 255))
    other = RunningMeanStd(shape)
    other.update(batch(), 0.0, 1.0)
    rms.load_state_dict(other.state_dict())
    torch.testing.assert_close(rms.affine(x, 10.0, 1 / 255), fresh(other).affine(x, 10.0, 1 / 255))
    with torch.no_grad():
        rms.var.mul_(4.0)
    torch.testing.assert_close(rms.affine(x, 10.0, 1 / 255), fresh(rms).affine(x, 10.0, 1 / 255))
    rms.mean = rms.mean + 1.0  # a replaced buffer
    torch.testing.assert_close(rms.affine(x, 10.0, 1 / 255), fresh(rms).affine(x, 10.0, 1 / 255))
    torch.testing.assert_close(rms.affine(x, 0.0, 1.0), fresh(rms).affine(x, 0.0, 1.0))
