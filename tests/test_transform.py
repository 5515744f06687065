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


def test_stacked_fits_equal_one_at_a_time():
    rng = np.random.default_rng(11)
    src = rng.uniform(0, 250, (6, 5, 2))
    src[2] = src[2] * [-1, 1]            # a mirrored face: the reflection case, mid-stack
    dst = transform.get_template("sphere_112x96").points
    for fit in (transform.umeyama, transform.scale_shift):
        np.testing.assert_allclose(fit(src, dst), np.stack([fit(p, dst) for p in src]),
                                   atol=1e-12)
    assert (np.linalg.det(transform.umeyama(src, src[:, :, ::-1])[:, :, :2]) > 0).all()


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


def test_every_template_scales_by_the_pixel_centre_rule():
    for name in transform.TEMPLATE_NAMES:
        full, half = transform.get_template(name), transform.get_template(name, 0.5)
        assert (half.height, half.width) == (round(full.height / 2), round(full.width / 2))
        if full.points is not None:
            np.testing.assert_allclose(half.points, (full.points + 0.5) * 0.5 - 0.5)


def test_deepid_regions_are_windows_of_the_aligned_face():
    sphere = transform.get_template("sphere_112x96").points
    for name in ("deepid_55x47", "deepid_face_47x47", "deepid_eyes_47x47",
                 "deepid_nose_47x47", "deepid_mouth_47x47"):
        t = transform.get_template(name)
        # a window of the 112x96 frame: one scale on both axes, no rotation
        m = transform.umeyama(sphere, t.points)
        np.testing.assert_allclose(transform.apply(m, sphere), t.points, atol=1e-9)
        assert m[0, 1] == pytest.approx(0, abs=1e-12) and m[0, 0] == pytest.approx(m[1, 1])
    centre = 23.0                              # the centre pixel of a 47 px crop
    np.testing.assert_allclose(transform.get_template("deepid_nose_47x47").points[2],
                               [centre, centre])
    eyes = transform.get_template("deepid_eyes_47x47").points[:2].mean(0)
    mouth = transform.get_template("deepid_mouth_47x47").points[3:].mean(0)
    np.testing.assert_allclose([eyes, mouth], [[centre, centre]] * 2)
    # the whole-face 55x47 crop is the 112x96 frame at 55/112 of its size
    whole = transform.get_template("deepid_55x47")
    np.testing.assert_allclose(whole.points, (sphere + 0.5 - [0.5 * (96 - 47 * 112 / 55), 0])
                               * 55 / 112 - 0.5, atol=1e-9)


def test_box_crop_puts_the_grown_square_box_on_the_crop():
    t = transform.get_template("facenet_160")
    assert t.points is None and t.margin == 0.25
    box = np.array([100.0, 50.0, 180.0, 150.0])       # 80 x 100: the square side is 100
    m = transform.box_crop(box, t)
    side = 100 * 1.25
    corners = np.array([[140 - side / 2, 100 - side / 2], [140 + side / 2, 100 + side / 2]])
    np.testing.assert_allclose(transform.apply(m, corners), [[-0.5, -0.5], [159.5, 159.5]])
    np.testing.assert_allclose(transform.apply(transform.box_crop(box, transform.get_template(
        "facenet_160", margin=0.0)), box.reshape(2, 2))[:, 1], [-0.5, 159.5])


def test_detection_template_needs_detector_boxes():
    from facerepro.align.aligner import transforms_for

    t = transform.get_template("facenet_160")
    points = transform.get_template("sphere_112x96").points[None]
    with pytest.raises(ValueError, match="align.landmarks: mtcnn"):
        transforms_for(points, t, np.full((1, 4), np.nan))
    m = transforms_for(points, t, np.array([[0.0, 0.0, 99.0, 99.0]]))
    assert m.shape == (1, 2, 3)
