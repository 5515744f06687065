import numpy as np
import pytest

from facerepro.align import transform


def random_similarity(rng):
    angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.3, 3.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = rng.uniform(-50, 50, 2)
    return m


@pytest.mark.parametrize("seed", range(5))
def test_umeyama_recovers_a_known_similarity(seed):
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 250, (5, 2))
    m = random_similarity(rng)
    np.testing.assert_allclose(transform.umeyama(src, transform.apply(m, src)), m, atol=1e-9)


def test_umeyama_never_returns_a_reflection():
    src = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.3]], float)
    mirrored = src * [-1, 1]
    m = transform.umeyama(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_umeyama_is_least_squares_against_noise():
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 100, (5, 2))
    dst = transform.apply(random_similarity(rng), src) + rng.normal(0, 2, (5, 2))
    best = np.sum((transform.apply(transform.umeyama(src, dst), src) - dst) ** 2)
    for _ in range(50):   # no nearby similarity fits better
        m = transform.umeyama(src, dst) + rng.normal(0, 1e-3, (2, 3))
        m[:, :2] = m[0, 0] * np.eye(2) + m[1, 0] * np.array([[0, -1], [1, 0]])
        assert np.sum((transform.apply(m, src) - dst) ** 2) >= best - 1e-9


def test_scaled_template_keeps_the_crop_border_fixed():
    full = transform.get_template("sphere_112x96")
    half = transform.get_template("sphere_112x96", 0.5)
    assert (half.height, half.width) == (56, 48)
    # pixel-centre convention: the outer corner (-0.5, -0.5) maps to itself
    np.testing.assert_allclose(half.points, (full.points + 0.5) * 0.5 - 0.5)
    np.testing.assert_allclose(half.points[0], [14.8973, 25.59815])


def test_112x112_template_is_shifted_by_eight_pixels():
    a = transform.get_template("sphere_112x96").points
    b = transform.get_template("sphere_112x112").points
    np.testing.assert_allclose(b - a, [[8, 0]] * 5)


def test_warp_puts_a_marked_pixel_on_its_template_point():
    image = np.zeros((250, 250, 3), np.uint8)
    src = np.array([[100, 110], [150, 108], [126, 140], [104, 170], [146, 168]], float)
    image[110, 100] = 255    # a dot on the left eye landmark (x=100, y=110)
    t = transform.get_template("sphere_112x96")
    crop = transform.warp(image, transform.umeyama(src, t.points), t)
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    mapped = transform.apply(transform.umeyama(src, t.points), src[:1])[0]
    assert abs(x - mapped[0]) <= 1 and abs(y - mapped[1]) <= 1


def test_scale_shift_recovers_a_known_box_and_never_rotates():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 100, (5, 2))
    dst = 0.7 * src + [4.0, -9.0]
    m = transform.scale_shift(src, dst)
    np.testing.assert_allclose(m, [[0.7, 0, 4.0], [0, 0.7, -9.0]], atol=1e-12)
    # a rotated face is only scaled and shifted: the fit keeps the off-diagonal at zero
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = transform.scale_shift(src, src @ rot.T)
    assert m[0, 1] == 0 and m[1, 0] == 0 and m[0, 0] == m[1, 1]


def test_scale_shift_is_least_squares_among_scale_shift_maps():
    rng = np.random.default_rng(4)
    src, dst = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    m = transform.scale_shift(src, dst)
    best = np.sum((transform.apply(m, src) - dst) ** 2)
    for _ in range(200):
        s, t = m[0, 0] + rng.normal(scale=0.1), m[:, 2] + rng.normal(scale=0.1, size=2)
        assert np.sum((s * src + t - dst) ** 2) >= best


def test_box_template_crops_without_rotation():
    from facerepro.align.aligner import transforms_for

    t = transform.get_template("box_112x96")
    angle = np.deg2rad(15)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (t.points - t.points.mean(0)) @ rot.T * 2 + [300, 200]
    box, similarity = (transforms_for(tilted[None], tmpl)[0]
                       for tmpl in (t, transform.get_template("sphere_112x96")))
    assert box[0, 1] == 0 and box[1, 0] == 0
    np.testing.assert_allclose(transform.apply(similarity, tilted), t.points, atol=1e-9)
    assert np.abs(transform.apply(box, tilted) - t.points).max() > 1
