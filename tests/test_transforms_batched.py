"""RandGenesisCorruptionBatch: per-cube draws on the device, rates, fidelity, determinism."""

import numpy as np
import pytest
import torch
from monai.utils import set_determinism

from monai_genesis.transforms import RandGenesisCorruptionBatch, RandLocalPixelShuffle, bezier_table

SPATIAL = (20, 20, 16)


def _batch(b=4, c=1, seed=0, spatial=SPATIAL):
    return torch.from_numpy(np.random.RandomState(seed).rand(b, c, *spatial).astype(np.float32))


def _only(**on):
    probs = dict(flip_prob=0.0, local_shuffle_prob=0.0, nonlinear_prob=0.0, paint_prob=0.0, num_shuffle_blocks=300)
    probs.update(on)
    return RandGenesisCorruptionBatch(**probs)


def test_shapes_types_and_independent_target():
    x = _batch(3, 2)
    t = RandGenesisCorruptionBatch(num_shuffle_blocks=500).set_random_state(0)
    corrupted, target = t(x)
    for out in (corrupted, target):
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert not torch.equal(corrupted, target)
    corrupted, target = _only()(x)
    assert torch.equal(corrupted, x) and torch.equal(target, x) and corrupted.data_ptr() != target.data_ptr()


def test_seeded_runs_repeat_and_cubes_get_their_own_draws():
    x = _batch(6).clone()
    x[:] = x[0]  # six copies of one cube
    first = _only(local_shuffle_prob=1.0).set_random_state(1)(x)
    second = _only(local_shuffle_prob=1.0).set_random_state(1)(x)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    corrupted = first[0]
    assert len({corrupted[i].numpy().tobytes() for i in range(6)}) == 6
    other = _only(local_shuffle_prob=1.0).set_random_state(2)(x)[0]
    assert not torch.equal(other, corrupted)


def test_set_determinism_seeds_the_unseeded_form():
    x = _batch()
    set_determinism(seed=5)
    a = RandGenesisCorruptionBatch(num_shuffle_blocks=500)(x)
    set_determinism(seed=5)
    b = RandGenesisCorruptionBatch(num_shuffle_blocks=500)(x)
    set_determinism(seed=None)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_flip_rates_and_target_matches_input():
    x = _batch(300, spatial=(4, 4, 2))
    corrupted, target = _only(flip_prob=0.4).set_random_state(3)(x.clone())
    assert torch.equal(corrupted, target)
    rows = cols = 0
    for i in range(300):
        options = {(r, c): x[i].flip(dims) if dims else x[i] for r in (0, 1) for c in (0, 1) for dims in [tuple(d for d, f in ((1, r), (2, c)) if f)]}
        match = [k for k, v in options.items() if torch.equal(v, target[i])]
        assert len(match) == 1
        rows, cols = rows + match[0][0], cols + match[0][1]
    expected = sum((0.4**k * 0.6 if k < 3 else 0.4**3) * (1 - (1 / 3) ** k) / 2 for k in range(4))
    for count in (rows, cols):
        assert abs(count / 300 - expected) < 4 * np.sqrt(expected * (1 - expected) / 300)


def test_step_rates():
    x = _batch(200, spatial=(14, 14, 14)) * 0.5 + 0.25
    changed = lambda out: (out[0] != out[1]).flatten(1).any(1).float().mean().item()
    assert abs(changed(_only(nonlinear_prob=0.5).set_random_state(4)(x)) - 0.5) < 0.14
    painted = _only(paint_prob=0.9, inpaint_prob=0.2).set_random_state(5)(x)
    fraction = (painted[0] != painted[1]).flatten(1).float().mean(1)
    out_painted = (fraction > 0.3).float().mean().item()  # out-painting replaces most voxels
    in_painted = ((fraction > 0) & (fraction <= 0.3)).float().mean().item()
    assert abs(out_painted - 0.72) < 0.13 and abs(in_painted - 0.18) < 0.11
    shuffled = _only(local_shuffle_prob=0.5, num_shuffle_blocks=100).set_random_state(6)(_batch(200, spatial=(20, 20, 20)))
    assert abs(changed(shuffled) - 0.5) < 0.15


def test_batched_shuffle_semantics():
    """Values stay within their cube and box; one box per cube keeps the box's multiset; the law matches the per-cube form."""
    b, spatial = 5, (20, 20, 10)
    x = torch.arange(b * 2 * 4000, dtype=torch.float32).reshape(b, 2, *spatial) / 2**16  # exact in float32, in [0, 1)
    out, _ = _only(local_shuffle_prob=1.0, num_shuffle_blocks=1).set_random_state(0)(x)
    for i in range(b):
        changed = (out[i] != x[i]).any(0)
        if changed.any():
            where = changed.nonzero()
            box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(where.min(0).values, where.max(0).values))
            assert all(s.stop - s.start <= m for s, m in zip(box, (2, 2, 1)))
            for c in range(2):
                assert torch.equal(out[i, c][box].flatten().sort().values, x[i, c][box].flatten().sort().values)
            assert torch.equal((out[i, 1] - out[i, 0]), (x[i, 1] - x[i, 0]))  # channels move together
    many, _ = RandGenesisCorruptionBatch(
        flip_prob=0.0, local_shuffle_prob=1.0, nonlinear_prob=0.0, paint_prob=0.0
    ).set_random_state(1)(x)
    for i in range(b):
        assert torch.isin(many[i], x[i]).all()
    ours = (many != x)[:, 0].float().mean().item()
    per_cube = [(RandLocalPixelShuffle(prob=1.0).set_random_state(s)(x[0].numpy()) != x[0].numpy())[0].mean() for s in range(5)]
    assert abs(ours - np.mean(per_cube)) < 0.02, (ours, per_cube)


def test_batched_nonlinear_matches_reference_table():
    x = torch.linspace(0, 1, 16 * 16 * 16).reshape(1, 1, 16, 16, 16).repeat(8, 1, 1, 1, 1)
    t = _only(nonlinear_prob=1.0).set_random_state(7)
    generator = t._generator(x.device)
    state = generator.get_state()
    mapped = t._nonlinear(x, generator)
    generator.set_state(state)
    torch.rand(8, generator=generator, dtype=torch.float64)  # the apply draws
    controls = torch.rand((4, 8, 1), generator=generator, dtype=torch.float64).squeeze(-1).T.numpy()
    inverted = (torch.rand(8, generator=generator, dtype=torch.float64) < 0.5).numpy()
    assert 0 < inverted.sum() < 8
    for i in range(8):
        reference = np.interp(x[i].double().numpy().ravel(), *bezier_table(controls[i], inverted[i], 100000))
        assert np.abs(mapped[i].double().numpy().ravel() - reference).max() < 1e-3


def test_multichannel_float64_batches():
    x = _batch(2, 3).double()
    corrupted, target = _only(local_shuffle_prob=1.0, nonlinear_prob=1.0, paint_prob=1.0).set_random_state(8)(x)
    assert corrupted.dtype == torch.float64 and corrupted.shape == x.shape
    assert corrupted.min() >= 0 and corrupted.max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_stay_on_the_device():
    x = _batch(4).cuda()
    t = RandGenesisCorruptionBatch(local_shuffle_prob=1.0).set_random_state(0)
    corrupted, target = t(x)
    assert corrupted.is_cuda and target.is_cuda
    again = RandGenesisCorruptionBatch(local_shuffle_prob=1.0).set_random_state(0)(x)
    assert torch.equal(corrupted, again[0])
