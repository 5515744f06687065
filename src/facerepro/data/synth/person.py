"""The person, drawn in the canonical face frame: body, hair, ears, face and its features,
accessories, and a hand held up in front."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facerepro.data.synth.geometry import _EYE_DEPTH, _NOSE_DEPTH, _eye_centres, _mouth_curves
from facerepro.data.synth.identity import _BLEMISH, _FRECKLE, _MOLE, _PUPIL_RGB, Identity
from facerepro.data.synth.painter import _ellipse, _Painter
from facerepro.data.synth.shot import Shot


@dataclass(frozen=True)
class _Style:
    """Cosmetic choices of one image that carry no label (colours, shapes of accessories)."""

    clothes: np.ndarray
    accent: np.ndarray           # tie, hat
    lipstick: np.ndarray
    makeup: np.ndarray
    frame: np.ndarray
    round_glasses: bool
    sunglasses: bool
    hat_brim: bool
    hoops: bool
    gold: bool

    @classmethod
    def sample(cls, rng: np.random.Generator) -> _Style:
        lipsticks = np.array([[178, 30, 52], [200, 70, 96], [150, 40, 60], [190, 90, 90]])
        return cls(
            clothes=rng.uniform(20, 235, 3),
            accent=rng.uniform(20, 235, 3),
            lipstick=lipsticks[rng.integers(len(lipsticks))] + rng.normal(0, 8, 3),
            makeup=np.array([[120, 80, 140], [110, 80, 60], [70, 90, 130]])[rng.integers(3)],
            frame=np.array([[25, 25, 28], [90, 60, 40], [170, 170, 175]])[rng.integers(3)],
            round_glasses=bool(rng.random() < 0.5),
            sunglasses=bool(rng.random() < 0.25),
            hat_brim=bool(rng.random() < 0.5),
            hoops=bool(rng.random() < 0.5),
            gold=bool(rng.random() < 0.5),
        )


def _draw_body(paint: _Painter, f: Identity, at: dict[str, int], style: _Style) -> None:
    w, c = f.face_w, f.chin_y
    neck = np.array([[-0.55 * w, 0.5 * c], [0.55 * w, 0.5 * c], [0.62 * w, c + 60],
                     [-0.62 * w, c + 60]])
    paint.fill(neck, f.skin * 0.86)
    top = c + 26
    body = np.array([[-0.62 * w, top], [-(w + 45), top + 18], [-(w + 85), top + 120],
                     [w + 85, top + 120], [w + 45, top + 18], [0.62 * w, top],
                     [0, top + 22]])
    paint.fill(body, style.clothes)
    if at["Wearing_Necktie"]:
        collar = np.array([[-0.62 * w, top], [0, top + 22], [0.62 * w, top], [0.3 * w, top + 14],
                           [0, top + 4], [-0.3 * w, top + 14]])
        paint.fill(collar, (236, 236, 232))
        knot = np.array([[-4.0, top + 2], [4.0, top + 2], [3.0, top + 9], [-3.0, top + 9]])
        blade = np.array([[-3.0, top + 9], [3.0, top + 9], [7.0, top + 70], [0, top + 78],
                          [-7.0, top + 70]])
        paint.fill(blade, style.accent)
        paint.fill(knot, style.accent * 0.8)
    if at["Wearing_Necklace"]:
        metal = (212, 175, 55) if style.gold else (205, 205, 212)
        chain = _ellipse(0, c + 10, 0.5 * w, 14, 20, 0.15 * np.pi, 0.85 * np.pi)
        paint.stroke(chain, metal, 1.6)
        paint.fill(_ellipse(0, c + 25.5, 2.2, 2.6, 12), metal)


def _head_outline(f: Identity, grow: float = 0.0, n: int = 40) -> np.ndarray:
    """The face contour: an elliptic cranium over a superellipse jaw, grown by ``grow`` px."""
    up = np.linspace(np.pi, 2 * np.pi, n // 2, endpoint=False)
    upper = np.stack([(f.face_w + grow) * np.cos(up), (f.face_top + grow) * np.sin(up)], 1)
    lo = np.linspace(0, np.pi, n // 2 + 1)
    c, s = np.cos(lo), np.sin(lo)
    e = 2 / f.jaw_n
    lower = np.stack([(f.face_w + grow) * np.sign(c) * np.abs(c) ** e * (1 - f.jaw_taper * s**2),
                      (f.chin_y + grow) * s**e], 1)
    return np.vstack([upper, lower])


def _wave(f: Identity, y: np.ndarray, amplitude: float) -> np.ndarray:
    if f.hair_style == "straight":
        return 0 * y
    freq = 0.18 if f.hair_style == "wavy" else 0.55
    return amplitude * np.sin(freq * y + f.strands[0])


def _draw_hair_back(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    if at["Bald"]:
        for side in (-1, 1):   # a fringe over the ears is all that is left
            fringe = np.array([[side * (f.face_w + 1), f.eye_y - 16],
                               [side * (f.face_w + 2.5), f.ear_y + 7]])
            paint.stroke(fringe, f.hair_rgb, 5)
        return
    w, v = f.face_w + f.hair_volume, f.hair_volume
    top = _ellipse(0, -6, w, f.face_top - 6 + v, 24, np.pi, 2 * np.pi)
    end = {"short": f.ear_y - 4, "medium": f.chin_y - 4, "long": f.chin_y + 60}[f.hair_len]
    flare = {"short": -4.0, "medium": 2.0, "long": 12.0}[f.hair_len]
    ys = np.linspace(-6, end, 8)
    right = np.stack([w + flare * np.linspace(0, 1, 8) + _wave(f, ys, 3.0), ys], 1)
    left = np.stack([-right[::-1, 0], ys[::-1]], 1)
    paint.fill(np.vstack([top, right, left]), f.hair_rgb)
    if f.hair_len != "short":
        for k, side in enumerate((-1, 1, -1, 1)):
            x = side * (w - 3 - 3 * k)
            strand = np.stack([x + _wave(f, ys, 2.0) + 0.5 * k, ys], 1)
            paint.stroke(strand, f.hair_rgb * 0.72, 1)


def _draw_ears(paint: _Painter, f: Identity) -> None:
    for side in (-1, 1):
        cx = side * (f.face_w + f.ear_w * 0.2)
        paint.fill(_ellipse(cx, f.ear_y, f.ear_w, f.ear_h, 20), f.skin * 0.94)
        inner = _ellipse(cx + side * 0.8, f.ear_y - 1, f.ear_w * 0.5, f.ear_h * 0.6, 10,
                         -0.5 * np.pi, 0.5 * np.pi)
        inner[:, 0] = cx + side * np.abs(inner[:, 0] - cx)
        paint.stroke(inner, f.skin * 0.72, 1)


def _draw_face(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot, style: _Style
               ) -> None:
    skin = f.skin
    paint.fill(_head_outline(f), skin)
    if at["Double_Chin"]:
        chin = _ellipse(0, f.chin_y - 2, 0.42 * f.face_w, 8, 14, 0, np.pi)
        paint.fill(chin, skin * 0.96, depth=1)
        paint.stroke(chin, skin * 0.78, 1, depth=1)
    _draw_skin_marks(paint, f, at, shot, style)
    for side in (-1, 1):
        _draw_eye(paint, f, at, shot, style, side)
        _draw_brow(paint, f, shot, side)
    _draw_nose(paint, f, at)
    _draw_mouth(paint, f, at, shot, style)
    _draw_facial_hair(paint, f, at)


def _draw_skin_marks(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot,
                     style: _Style) -> None:
    skin, w, ey = f.skin, f.face_w, f.eye_y
    for side in (-1, 1):
        if at["High_Cheekbones"]:
            paint.fill(_ellipse(side * 0.56 * w, ey + 10, 9, 4.5, 16, rot=side * 0.3),
                       np.minimum(skin * 1.15, 255), alpha=0.55)
            paint.stroke(np.array([[side * 0.9 * w, ey + 14], [side * 0.5 * w, ey + 23]]),
                         skin * 0.8, 1.2)
        if at["Rosy_Cheeks"]:
            paint.fill(_ellipse(side * 0.52 * w, ey + 18, 8, 7, 16), (226, 92, 104), alpha=0.35)
        if at["Heavy_Makeup"]:
            paint.fill(_ellipse(side * 0.58 * w, ey + 15, 8, 5, 16), (214, 110, 120), alpha=0.3)
        # Smiling deepens the fold from the nose wing to beyond the mouth corner.
        fold = np.array([[side * (f.nose_w + 1), f.tip_y],
                         [side * (f.mouth_w + 3 + 2 * shot.smile), f.mouth_y + 3]])
        strength = 0.9 - 0.1 * shot.smile - 0.06 * f.wrinkles
        paint.stroke(fold, skin * strength, 1, depth=3)
        if f.wrinkles:
            corner = side * (f.eye_dx + f.eye_w + 1.5)
            for k in (-1, 0, 1):
                crow = np.array([[corner, ey + k], [corner + side * 4, ey + 2.5 * k]])
                paint.stroke(crow, skin * (0.86 - 0.08 * f.wrinkles), 1)
    if f.wrinkles and not at["Bangs"]:
        for k in range(3):
            y = f.hairline + 7 + 4.5 * k
            line = np.stack([np.linspace(-0.45 * w, 0.45 * w, 7),
                             y + 0.8 * np.sin(np.linspace(0, 3, 7) + k)], 1)
            paint.stroke(line, skin * (0.88 - 0.08 * f.wrinkles), 1)
    colours = {_MOLE: (72, 46, 36), _FRECKLE: skin * 0.78, _BLEMISH: skin * (1.0, 0.78, 0.78)}
    for kind, x, y, r in f.details:
        paint.fill(_ellipse(x, y, r, r, 8), colours[int(kind)])


def _eye_outline(f: Identity, shot: Shot) -> tuple[np.ndarray, np.ndarray, float]:
    """Upper and lower lid (eye-local, untilted) and the eye's half height; smiles squint."""
    t = np.linspace(-1.0, 1.0, 13)
    h = f.eye_h * (1 - 0.25 * shot.smile)
    upper = np.stack([f.eye_w * t, -h * (1 - t**2) ** 0.8], 1)
    lower = np.stack([f.eye_w * t, 0.7 * h * (1 - t**2) ** 0.9], 1)
    return upper, lower, h


def _draw_eye(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot, style: _Style,
              side: int) -> None:
    centre = _eye_centres(f)[(side + 1) // 2]
    upper, lower, h = _eye_outline(f, shot)
    tilt = -side * math.radians(f.eye_tilt)
    rot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])

    def place(pts: np.ndarray) -> np.ndarray:
        return pts @ rot.T + centre

    def clipped_disc(r: float) -> np.ndarray:
        # A disc cut by the lids, so narrow eyes show a slit of iris.
        disc = _ellipse(0, 0, r, r, 16)
        t = np.clip(disc[:, 0] / f.eye_w, -1, 1)
        top, bottom = -h * (1 - t**2) ** 0.8, 0.7 * h * (1 - t**2) ** 0.9
        disc[:, 1] = np.clip(disc[:, 1], top, bottom)
        return disc

    if at["Heavy_Makeup"]:
        lid = np.vstack([upper, upper[::-1] + (0, -4.5)])
        paint.fill(place(lid), style.makeup, depth=_EYE_DEPTH, alpha=0.45)
    if at["Bags_Under_Eyes"]:
        bag = np.vstack([lower + (0, 1.5), lower[::-1] + (0, 4.5)])
        paint.fill(place(bag), f.skin * 0.68, depth=_EYE_DEPTH, alpha=0.55)
    paint.fill(place(np.vstack([upper, lower[::-1]])), (236, 232, 226), depth=_EYE_DEPTH)
    paint.fill(place(clipped_disc(f.iris_r)), f.iris_rgb, depth=_EYE_DEPTH)
    paint.fill(place(clipped_disc(0.45 * f.iris_r)), _PUPIL_RGB, depth=_EYE_DEPTH)
    liner = 2.2 if at["Heavy_Makeup"] else 1.2
    paint.stroke(place(upper), (28, 22, 22) if at["Heavy_Makeup"] else f.skin * 0.32, liner,
                 depth=_EYE_DEPTH)
    paint.stroke(place(lower), f.skin * 0.72, 1, depth=_EYE_DEPTH)


def _draw_brow(paint: _Painter, f: Identity, shot: Shot, side: int) -> None:
    s = np.linspace(0.0, 1.0, 9)
    inner, outer = f.eye_dx - f.eye_w - 1.5, f.eye_dx + f.eye_w + 2.5
    x = side * (inner + (outer - inner) * s)
    base = f.eye_y + (f.eye_asym if side > 0 else 0) - f.brow_gap - shot.brow_raise
    y = base - f.brow_arch * np.sin(np.pi * s**0.75) + f.brow_slope * s
    half = f.brow_thick * (1 - 0.45 * s) / 2
    paint.fill(np.vstack([np.stack([x, y - half], 1), np.stack([x, y + half], 1)[::-1]]),
               f.brow_rgb, depth=1.5)


def _draw_nose(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    skin, tip, nw = f.skin, f.tip_y, f.nose_w
    for side in (-1, 1):
        ridge = np.array([[side * 3.0, f.eye_y + 3], [side * 3.5, tip - 8],
                          [side * 0.75 * nw, tip - 1.5]])
        paint.stroke(ridge, skin * 0.84, 1, depth=np.array([4.0, 8.0, 8.0]))
        wing = _ellipse(side * 0.62 * nw, tip + 0.5, 0.4 * nw, 3.2, 10, -0.5 * np.pi,
                        0.5 * np.pi)
        wing[:, 0] = side * np.abs(wing[:, 0])
        paint.stroke(wing, skin * 0.72, 1, depth=8)
        paint.fill(_ellipse(side * 0.33 * nw, tip + 2.4, 1.2 + 0.1 * nw, 1.0, 10), skin * 0.36,
                   depth=9)
    if at["Pointy_Nose"]:
        vee = np.array([[-2.5, tip - 4], [0, tip + 1.5], [2.5, tip - 4]])
        paint.stroke(vee, skin * 0.8, 1, depth=_NOSE_DEPTH)
        paint.fill(_ellipse(0, tip - 1.5, 1.4, 1.8, 10), np.minimum(skin * 1.15, 255),
                   depth=_NOSE_DEPTH)
    else:
        paint.fill(_ellipse(0, tip - 1, 2.8, 2.2, 12), np.minimum(skin * 1.1, 255),
                   depth=_NOSE_DEPTH, alpha=0.6)


def _draw_mouth(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot,
                style: _Style) -> None:
    x, upper_out, upper_in, lower_in, lower_out, depth = _mouth_curves(f, shot)
    lip = style.lipstick if at["Wearing_Lipstick"] else f.lip_rgb
    outline = np.vstack([np.stack([x, upper_out], 1), np.stack([x, lower_out], 1)[::-1]])
    paint.fill(outline, lip, depth=np.concatenate([depth, depth[::-1]]))
    if shot.mouth_open > 0:
        inside = np.vstack([np.stack([x, upper_in], 1), np.stack([x, lower_in], 1)[::-1]])
        both = np.concatenate([depth, depth[::-1]])
        paint.fill(inside, (72, 26, 32), depth=both)
        if shot.smile > 0.4:
            teeth = np.vstack([np.stack([x, upper_in], 1),
                               np.stack([x, 0.55 * upper_in + 0.45 * lower_in], 1)[::-1]])
            paint.fill(teeth, (238, 236, 226), depth=both)
    else:
        paint.stroke(np.stack([x, upper_in], 1), f.lip_rgb * 0.55, 1, depth=depth)


def _draw_facial_hair(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    colour = f.hair_rgb * 0.85
    lip_bottom = f.mouth_y + f.lip_lower + 1.5
    if not at["No_Beard"] or at["5_o_Clock_Shadow"]:
        jaw = _head_outline(f, grow=1.5, n=60)
        jaw = jaw[(jaw[:, 1] > f.ear_y) & (np.arange(len(jaw)) >= 30)]
        half = np.array([[0.9 * f.face_w, f.ear_y + 2], [0.78 * f.face_w, f.mouth_y - 6],
                         [f.mouth_w + 3, f.mouth_y - 1], [0.6 * f.mouth_w, lip_bottom + 1.5]])
        inner = np.vstack([half * (-1, 1), [[0, lip_bottom + 2.5]], half[::-1]])
        region = np.vstack([jaw[::-1], inner[::-1]])   # along the jaw, then back above it
        if at["No_Beard"]:
            paint.fill(region, (70, 70, 76), depth=1, alpha=0.3)
        else:
            paint.fill(region, colour, depth=1)
    if at["Goatee"]:
        w = 0.55 * f.mouth_w
        goatee = np.array([[-w, lip_bottom], [w, lip_bottom], [0.75 * w, f.chin_y - 1],
                           [0, f.chin_y + 1.5], [-0.75 * w, f.chin_y - 1]])
        paint.fill(goatee, colour * 0.8, depth=2)
    if at["Mustache"]:
        x = np.linspace(-1, 1, 9)
        top = f.tip_y + 4.5 + 2.5 * x**2
        bottom = f.mouth_y - f.lip_upper - 0.6 + 1.5 * x**2
        paint.fill(np.vstack([np.stack([(f.mouth_w + 1.5) * x, top], 1),
                              np.stack([(f.mouth_w + 1.5) * x, bottom], 1)[::-1]]),
                   colour * 0.8, depth=3)
    if at["Sideburns"]:
        for side in (-1, 1):
            strip = np.array([[side * (f.face_w - 6), f.eye_y - 14], [side * (f.face_w + 0.5),
                              f.eye_y - 14], [side * (f.face_w + 0.5), f.ear_y + 10],
                              [side * (f.face_w - 5), f.ear_y + 10]])
            paint.fill(strip, colour)


def _hairline(f: Identity, at: dict[str, int], n: int = 13) -> np.ndarray:
    u = np.linspace(-1.0, 1.0, n)
    y = f.hairline + 12 * u**2
    if at["Receding_Hairline"]:   # temples recede further than the centre: an M
        y = y - 10 * np.exp(-(((np.abs(u) - 0.55) / 0.18) ** 2))
    return np.stack([0.93 * f.face_w * u, y], 1)


def _draw_hair_front(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    if at["Bald"]:
        return
    line = _hairline(f, at)
    w, v = f.face_w + f.hair_volume, f.hair_volume
    temple = line[0, 1]
    start = math.asin(min(1.0, max(-1.0, (temple + 6) / (f.face_top - 6 + v))))
    cap = _ellipse(0, -6, w, f.face_top - 6 + v, 24, np.pi - start, 2 * np.pi + start)
    paint.fill(np.vstack([cap, line[::-1]]), f.hair_rgb)
    if at["Bangs"]:
        x = np.linspace(-0.9, 0.9, 10) * f.face_w
        jag = 2.0 * np.sin(f.strands[:10] * 3)
        bottom = f.eye_y - f.brow_gap - 5 + jag + _wave(f, x, 1.5)
        paint.fill(np.vstack([line, np.stack([x, bottom], 1)[::-1]]), f.hair_rgb)
    crown = np.array([0.0, -(f.face_top + 0.5 * v)])
    shades = (f.hair_rgb * 0.72, np.minimum(f.hair_rgb * 1.18 + 10, 255))
    for k, start_pt in enumerate(line[1:-1:2]):
        ys = np.linspace(start_pt[1], crown[1], 6)
        xs = np.linspace(start_pt[0], 0.4 * start_pt[0], 6) + _wave(f, ys, 1.5)
        paint.stroke(np.stack([xs, ys], 1), shades[k % 2], 1)


def _draw_earrings(paint: _Painter, f: Identity, style: _Style) -> None:
    metal = (212, 175, 55) if style.gold else (205, 205, 212)
    for side in (-1, 1):
        lobe = (side * (f.face_w + f.ear_w * 0.2), f.ear_y + f.ear_h - 1)
        if style.hoops:
            paint.stroke(_ellipse(lobe[0], lobe[1] + 3.5, 3.2, 3.6, 14), metal, 1.3)
        else:
            paint.fill(_ellipse(lobe[0], lobe[1] + 1, 1.8, 1.8, 10), metal)


def _draw_hat(paint: _Painter, f: Identity, style: _Style) -> None:
    v = f.hair_volume
    bottom = f.hairline + 4
    crown = _ellipse(0, bottom, f.face_w + v + 3, bottom + f.face_top + v + 10, 24, np.pi,
                     2 * np.pi)
    paint.fill(crown, style.accent, depth=2)
    if style.hat_brim:
        paint.fill(_ellipse(0, bottom, f.face_w + v + 16, 5, 24), style.accent * 0.8, depth=3)
    else:
        band = np.array([[-(f.face_w + v + 3), bottom - 6], [f.face_w + v + 3, bottom - 6]])
        paint.stroke(band, style.accent * 0.75, 5, depth=2)


def _draw_glasses(paint: _Painter, f: Identity, shot: Shot, style: _Style) -> None:
    depth = 8.0
    rx, ry = f.eye_w + 4.5, f.eye_h + 5.5
    for side, (cx, cy) in zip((-1, 1), _eye_centres(f), strict=True):
        if style.round_glasses:
            lens = _ellipse(cx, cy, rx, ry, 24)
        else:
            u = np.array([-1, 1, 1, -1]) * rx
            lens = np.stack([cx + u, cy + np.array([-1, -1, 1, 1]) * ry], 1)
        if style.sunglasses:
            paint.fill(lens, (28, 28, 34), depth=depth, alpha=0.85)
        paint.stroke(lens, style.frame, 1.6, depth=depth, closed=True)
        temple = np.array([[cx + side * rx, cy - 1], [side * (f.face_w + 1), f.ear_y - 4]])
        paint.stroke(temple, style.frame, 1.6, depth=np.array([depth, 0.0]))
    bridge = _ellipse(0, f.eye_y - 1, f.eye_dx - rx, 2.5, 8, np.pi, 2 * np.pi)
    paint.stroke(bridge, style.frame, 1.6, depth=depth)


def _draw_hand(paint: _Painter, f: Identity, rng: np.random.Generator) -> None:
    skin = f.skin * rng.uniform(0.9, 1.05)
    cx = rng.uniform(-0.6, 0.6) * f.face_w
    cy = rng.uniform(f.mouth_y - 10, f.chin_y + 10)
    angle = rng.uniform(-0.6, 0.6)
    palm = _ellipse(cx, cy + 12, 17, 21, 20, rot=angle)
    paint.fill(palm, skin, depth=10)
    for k in range(4):
        a = angle + (k - 1.5) * 0.22
        fx, fy = cx + 26 * math.sin(a), cy + 12 - 26 * math.cos(a)
        finger = _ellipse(fx, fy, 4.2, 13, 14, rot=a)
        paint.fill(finger, skin, depth=10)
        paint.stroke(finger, skin * 0.8, 1, depth=10, closed=True)
