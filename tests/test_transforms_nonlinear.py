"""Non-linear intensity transformation: fidelity to the reference table, branches, endpoints, types."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_genesis.transforms import RandNonLinearIntensity, RandNonLinearIntensityd, bezier_table
from monai_genesis.transforms.nonlinear_intensity import REFERENCE_TABLE_SIZE, BezierLookup

RNG = np.random.RandomState(0)
# float32 voxels (as the transforms see them), compared in float64 against the reference table.
VOXELS = np.concatenate([np.linspace(0, 1, 100001), RNG.rand(50000)]).astype(np.float32)
EDGE = [1e-6, 1e-3, 0.01]
ADVERSARIAL = [np.array(c) for e in EDGE for c in ([e, 1 - e, 1 - e, e], [e, 0.9, 0.5, 0.1], [1 - e, 0.2, e, 0.8], [0.5, 0.5, 1 - e, 0.3], [e, e, 1 - e, 1 - e])]
CONTROLS = [RNG.random_sample(4) for _ in range(60)] + ADVERSARIAL + [np.array([1.0, 0.3, 0.0, 0.7])]


def _reference_mapping(control, inverted, x):
    """The reference implementation's mapping: 100,000-point table through np.interp."""
    return np.interp(x.astype(np.float64), *bezier_table(control, inverted, REFERENCE_TABLE_SIZE))


def test_reference_table_matches_the_published_construction():
    """Bernstein form with t from 0 to 1 (curve traversed from (1,1) to (0,0)), sorted as described."""
    control = np.array([0.3, 0.8, 0.6, 0.1])
    points = np.array([[0, 0], control[:2], control[2:], [1, 1]])
    t = np.linspace(0, 1, 1000)
    weights = np.array([[1, 3, 3, 1][i] * t ** (3 - i) * (1 - t) ** i for i in range(4)])
    xvals, yvals = points[:, 0] @ weights, points[:, 1] @ weights
    xs, ys = bezier_table(control, inverted=False, size=1000)
    np.testing.assert_allclose(xs, np.sort(xvals), atol=1e-12)
    np.testing.assert_allclose(ys, np.sort(yvals), atol=1e-12)
    xs, ys = bezier_table(control, inverted=True, size=1000)
    np.testing.assert_allclose(xs, np.sort(xvals), atol=1e-12)
    np.testing.assert_allclose(ys, yvals, atol=1e-12)


@pytest.mark.parametrize("inverted", [False, True])
def test_lookup_stays_within_1e3_of_reference_table(inverted):
    worst, grid_used = 0.0, 0
    for control in CONTROLS:
        lookup = BezierLookup(control, inverted)
        grid_used += lookup.use_grid
        expected = _reference_mapping(control, inverted, VOXELS)
        got_numpy = lookup.on_host(VOXELS).astype(np.float64)
        got_torch = lookup.on_device(torch.from_numpy(VOXELS)).double().numpy()
        worst = max(worst, np.abs(got_numpy - expected).max(), np.abs(got_torch - expected).max())
    assert worst < 1e-3
    assert 0 < grid_used < len(CONTROLS)  # both the grid and the exact fallback were exercised


def test_branches_endpoints_and_direction():
    t = RandNonLinearIntensity(prob=1.0)
    t.set_random_state(0)
    img = np.linspace(0, 1, 16 * 16 * 16, dtype=np.float32).reshape(1, 16, 16, 16)
    inverted = 0
    for _ in range(400):
        out = t(img).ravel()
        steps = np.diff(out)
        if t.inverted:
            inverted += 1
            assert out[0] == pytest.approx(1.0, abs=1e-6) and out[-1] == pytest.approx(0.0, abs=1e-6)
            assert steps.max() <= 1e-6
        else:
            assert out[0] == pytest.approx(0.0, abs=1e-6) and out[-1] == pytest.approx(1.0, abs=1e-6)
            assert steps.min() >= -1e-6
        assert out.min() >= 0 and out.max() <= 1
    assert abs(inverted / 400 - 0.5) < 4 * np.sqrt(0.25 / 400)


def test_control_points_uniform_and_application_rate():
    t = RandNonLinearIntensity()  # prob 0.9
    t.set_random_state(1)
    controls, applied = [], 0
    for _ in range(3000):
        t.randomize()
        applied += t._do_transform
        if t._do_transform:
            controls.append(t.control)
    controls = np.array(controls)
    assert abs(applied / 3000 - 0.9) < 4 * np.sqrt(0.09 / 3000)
    assert controls.min() >= 0 and controls.max() < 1
    np.testing.assert_allclose(controls.mean(0), 0.5, atol=0.03)
    np.testing.assert_allclose(controls.var(0), 1 / 12, atol=0.01)


def test_types_devices_and_determinism():
    img = np.random.RandomState(2).rand(1, 16, 16, 8).astype(np.float32)
    results = []
    for data in (img, torch.from_numpy(img), MetaTensor(torch.from_numpy(img), meta={"filename_or_obj": "ct.nii"})):
        t = RandNonLinearIntensity(prob=1.0)
        t.set_random_state(4)
        out = t(data)
        assert type(out) is type(data) and out.dtype == data.dtype and out.shape == data.shape
        results.append(np.asarray(out))
    assert out.meta["filename_or_obj"] == "ct.nii"
    np.testing.assert_array_equal(results[0], results[1])  # one CPU kernel for every container
    np.testing.assert_array_equal(results[0], results[2])
    on_torch = RandNonLinearIntensity(prob=1.0).set_random_state(4)(torch.from_numpy(img).requires_grad_())
    np.testing.assert_allclose(on_torch.detach().numpy(), results[0], atol=1e-6)  # the torch kernel (CUDA path)
    half = RandNonLinearIntensity(prob=1.0).set_random_state(4)(img.astype(np.float16))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, results[0], atol=2e-3)
    float64 = RandNonLinearIntensity(prob=1.0).set_random_state(4)(img.astype(np.float64))
    assert float64.dtype == np.float64
    np.testing.assert_allclose(float64, results[0], atol=1e-5)


def test_prob_zero_and_dictionary_form():
    img = np.random.RandomState(3).rand(1, 16, 16, 8).astype(np.float32)
    assert RandNonLinearIntensity(prob=0.0)(img) is img
    results = []
    for wrap in (np.array, torch.from_numpy, lambda a: MetaTensor(torch.from_numpy(a))):
        t = RandNonLinearIntensityd(["image", "other"], prob=1.0)
        t.set_random_state(0)
        out = t({"image": wrap(img.copy()), "other": wrap(img.copy())})
        np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(out["other"]))
        assert not np.array_equal(np.asarray(out["image"]), img)
        results.append(np.asarray(out["image"]))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_in_cuda_out():
    img = torch.rand(1, 16, 16, 8, device="cuda")
    out = RandNonLinearIntensity(prob=1.0).set_random_state(0)(img)
    assert out.device == img.device
    ref = RandNonLinearIntensity(prob=1.0).set_random_state(0)(img.cpu())
    np.testing.assert_allclose(out.cpu().numpy(), ref.numpy(), atol=1e-5)


def test_steep_cells_are_interpolated_exactly_through_the_table():
    """Voxels in cells the grid cannot follow get np.interp through the exact table; the others the grid."""
    from monai_genesis.transforms.nonlinear_intensity import GRID_CELLS

    x = np.concatenate([np.linspace(0, 1, 40001), np.random.RandomState(5).rand(20000)]).astype(np.float32)
    checked = 0
    for control in ADVERSARIAL:
        for inverted in (False, True):
            lookup = BezierLookup(control, inverted)
            if lookup.use_grid:
                continue
            got = lookup.on_host(x)
            cell = np.clip(x * np.float32(GRID_CELLS), 0, GRID_CELLS).astype(np.int64)
            in_steep = lookup.steep[cell].astype(bool)
            assert 0 < in_steep.mean() < 0.05  # a few cells near a vertical tangent, not the whole curve
            xs, ys, _ = lookup.exact_table()
            exact = np.interp(x[in_steep].astype(np.float64), xs, ys).astype(np.float32)
            np.testing.assert_array_equal(got[in_steep], exact)
            start, slope = lookup.start[cell[~in_steep]], lookup.slope[cell[~in_steep]]
            t = np.clip(x[~in_steep] * np.float32(GRID_CELLS), 0, GRID_CELLS)
            grid = (slope.astype(np.float32) * (t - cell[~in_steep]) + start.astype(np.float32)).astype(np.float32)
            np.testing.assert_allclose(got[~in_steep], grid, atol=1e-6)
            checked += 1
    assert checked >= 5
