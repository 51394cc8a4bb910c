"""What the target holds or plays with, painted out of the legs of an exemplar frame.

A target's training frames show more than the person: the juggler's ball sits on his
thigh, his knee or his shin in most of them, and the segmentation counts it as
person. Warped onto a requested pose, the ball comes with the leg that held it, in
a pose that has none; the trained correction then paints it over with a dark blot
(the demo's transfer showed one on a knee in most frames).

The legs of one person in one pair of trousers keep one colour over the video,
and a prop does not have it. So before a training frame is warped onto a
requested pose (:func:`edn.exemplars.pose_warp.write_pose_warp`: the pose_warp
method, held-out and transfer frames; the training pairs keep the frames as
filmed, :mod:`edn.exemplars.for_training`), the pixels of each leg segment
whose colour is far from that segment's usual colour are painted with the colour
of the segment's other pixels around them (:func:`edn.exemplars.warp.fill_from_around`):

- **The usual colour** of each leg segment (:data:`LEG_SEGMENTS`) is the median,
  in CIE Lab, of its pixels (in its band and the person's mask) over the target's
  training frames (:func:`leg_colours`).
- **Far** is a Lab distance above :data:`FAR_LAB` (8-bit OpenCV Lab, whose L
  runs 0-255: the juggler's navy trousers have L 24, his white ball above 200).
- **Not patterned.** A segment whose pixels are far from its usual colour in more
  than :data:`MAX_FAR_SHARE` of all its pixels (shorts over bare legs, stripes) is
  left as it is: what is far there is the clothing, not a prop.
- **The person's other parts stay.** A pixel in an arm's band (a hand resting on
  the thigh) is never painted, nor the top of a thigh, where a shirt's hem hangs
  (:data:`UPPER_LEG_FROM`), nor the end of a lower leg near the ankle, where the
  shoe begins (:data:`LOWER_LEG_TO`).

Option ``exemplars.repaint_props`` switches it (off: the frames as filmed).
On the demo's transfer the warped exemplars brought the ball onto the legs in 94
of 102 frames, and none with it on (``benchmarks/props_on_legs.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edn.exemplars.warp import LIMB_BY_NAME, LIMB_RADIUS, Limb, pixel_centres, band_region, body_scale, \
    fill_from_around, person_coverage, present_keypoints

#: The leg segments painted, upper and lower of each leg.
LEG_SEGMENTS = ("right_upper_leg", "right_lower_leg", "left_upper_leg", "left_lower_leg")
#: The arm segments whose pixels are never painted (a hand or forearm in front of a leg).
ARM_SEGMENTS = ("right_upper_arm", "right_lower_arm", "left_upper_arm", "left_lower_arm")
#: An upper leg's band starts this share of the way from hip to knee (a shirt's hem is not a prop).
UPPER_LEG_FROM = 0.2
#: A lower leg's band stops this share of the way from knee to ankle (the shoe is not a prop).
LOWER_LEG_TO = 0.8
#: An arm's band goes on past the wrist by this share of the lower arm (the hand).
HAND_SHARE = 0.65
#: Lab distance (8-bit OpenCV Lab) from a segment's usual colour beyond which a pixel is a prop's.
FAR_LAB = 80.0
#: A segment with more of its pixels far from its usual colour than this is patterned: never painted.
MAX_FAR_SHARE = 0.25
#: Percentile of a leg's own pixels' distances from its line taken as its half-width: a prop's pixels
#: farther out are not the leg at all, and leave the person's mask instead of being painted.
WIDTH_PERCENTILE = 95
#: Frames sampled (evenly) for the usual colours: enough for a median, bounded on long videos.
COLOUR_FRAMES = 200
#: Pixels along the person mask's edge where no prop is looked for (the segmentation's own spill).
EDGE_PX = 2
#: Gaussian width in pixels of the fill from the segment's pixels around a prop.
FILL_SIGMA_PX = 3.0
#: Source frames kept painted at once (a requested pose's exemplar is kept over many frames in a row).
CACHED_FRAMES = 16


def _band(limb: Limb, keypoints: np.ndarray, scale: float, size: tuple[int, int], span: tuple[float, float] = (0, 1),
          beyond: float = 0.0):
    """The limb's band in the frame (:func:`edn.exemplars.warp.band_region`) over ``span`` of the way
    from its start joint to its end joint, continued ``beyond`` times the limb's length."""
    joint, other = keypoints[limb.start, :2], keypoints[limb.end, :2]
    start, end = joint + span[0] * (other - joint), joint + span[1] * (other - joint)
    length = float(np.linalg.norm(other - joint))
    return band_region(start, end, LIMB_RADIUS * limb.radius * scale, size, feather=1.0,
                       beyond_end=beyond * length)


def _across(region, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """float32 [h, w] on the region's box: each pixel centre's distance from the line start-end."""
    x, y = pixel_centres(region.box)
    axis = (end - start) / max(float(np.linalg.norm(end - start)), 1e-6)
    return np.abs((x - start[0]) * axis[1] - (y - start[1]) * axis[0]).astype(np.float32)


def limb_bands(keypoints: np.ndarray, size: tuple[int, int]) -> tuple[dict, list]:
    """One frame's pose's leg segments, by name: (band, each band pixel's distance from the
    segment's line in body scales), and its arms' bands (a list)."""
    keypoints = np.asarray(keypoints, np.float64)
    present = present_keypoints(keypoints)
    scale = body_scale(keypoints, present)
    if scale is None:
        return {}, []
    legs, arms = {}, []
    for name in LEG_SEGMENTS + ARM_SEGMENTS:
        limb = LIMB_BY_NAME[name]
        if not (present[limb.start] and present[limb.end]):
            continue
        if name in LEG_SEGMENTS:
            region = _band(limb, keypoints, scale, size, (0.0, LOWER_LEG_TO) if "lower" in name else (UPPER_LEG_FROM, 1.0))
            if region is not None:
                legs[name] = (region, _across(region, keypoints[limb.start, :2], keypoints[limb.end, :2]) / scale)
        else:
            region = _band(limb, keypoints, scale, size, beyond=HAND_SHARE if "lower" in name else 0.0)
            if region is not None:
                arms.append(region)
    return legs, arms


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB).astype(np.float32)


def _inside(region, coverage: np.ndarray) -> np.ndarray:
    """bool [h, w] on the region's box: in the band and in the person."""
    x0, y0, x1, y1 = region.box
    return (region.alpha > 0.5) & (coverage[y0:y1, x0:x1] > 0.5)


@dataclass(frozen=True)
class LegColours:
    """Each leg segment's usual colour (Lab, float32 [3]), whether it is painted (not patterned),
    and its usual half-width (:data:`WIDTH_PERCENTILE` of its own pixels' distances from its line, in
    body scales)."""

    usual: dict[str, np.ndarray]
    painted: dict[str, bool]
    half_width: dict[str, float]


def leg_colours(frames: np.ndarray, masks: np.ndarray, keypoints: np.ndarray, first_heldout: int) -> LegColours:
    """The usual colour of every leg segment over the training frames (before ``first_heldout``;
    at most :data:`COLOUR_FRAMES`, evenly spaced) of ``frames`` uint8 [T, H, W, 3] with their
    ``masks`` uint8 [T, H, W] and ``keypoints`` [T, K, 3], and which segments are plain enough to paint."""
    height, width = frames.shape[1:3]
    training = min(first_heldout, len(frames))
    samples: dict[str, list[np.ndarray]] = {name: [] for name in LEG_SEGMENTS}
    distances: dict[str, list[np.ndarray]] = {name: [] for name in LEG_SEGMENTS}
    for t in np.unique(np.linspace(0, training - 1, min(training, COLOUR_FRAMES)).round().astype(int)):
        legs, _ = limb_bands(keypoints[t], (width, height))
        if not legs:
            continue
        lab, coverage = _lab(np.asarray(frames[t])), person_coverage(np.asarray(masks[t]))
        for name, (region, across) in legs.items():
            x0, y0, x1, y1 = region.box
            inside = _inside(region, coverage)
            samples[name].append(lab[y0:y1, x0:x1][inside])
            distances[name].append(across[inside])
    usual, painted, half_width = {}, {}, {}
    for name, parts in samples.items():
        pixels = np.concatenate(parts) if parts else np.empty((0, 3), np.float32)
        if len(pixels) == 0:
            continue
        usual[name] = np.median(pixels, axis=0).astype(np.float32)
        far = np.linalg.norm(pixels - usual[name], axis=1) > FAR_LAB
        painted[name] = bool(far.mean() <= MAX_FAR_SHARE)
        half_width[name] = float(np.percentile(np.concatenate(distances[name])[~far], WIDTH_PERCENTILE)) \
            if (~far).any() else 0.0
    return LegColours(usual, painted, half_width)


def repaint_props(image: np.ndarray, mask: np.ndarray, keypoints: np.ndarray,
                  colours: LegColours) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (uint8 [H, W, 3]) and ``mask`` (uint8 [H, W]) with every prop pixel of the legs
    painted out: a pixel in a painted leg segment's band and in the person whose Lab colour is
    farther than :data:`FAR_LAB` from the segment's usual one, and in no arm's band. Within the
    segment's usual half-width of its line it takes the colour of the segment's other pixels around
    it; beyond, it is not the leg, and leaves the mask. The inputs themselves when no pixel is a prop's."""
    height, width = image.shape[:2]
    legs, arms = limb_bands(keypoints, (width, height))
    legs = {name: band for name, band in legs.items() if colours.painted.get(name)}
    if not legs:
        return image, mask
    lab, coverage = _lab(image), person_coverage(mask)
    # A prop is found well inside the person: along the mask's edge, far colours are the background
    # the segmentation let in, not a prop.
    core = cv2.erode((coverage > 0.5).astype(np.uint8), _square(EDGE_PX)).astype(bool)
    prop = np.zeros((height, width), bool)
    plain = np.zeros((height, width), bool)
    beyond = np.zeros((height, width), bool)
    for name, (region, across) in legs.items():
        x0, y0, x1, y1 = region.box
        inside = _inside(region, coverage)
        far = np.linalg.norm(lab[y0:y1, x0:x1] - colours.usual[name], axis=-1) > FAR_LAB
        prop[y0:y1, x0:x1] |= inside & far & core[y0:y1, x0:x1]
        plain[y0:y1, x0:x1] |= inside & ~far
        beyond[y0:y1, x0:x1] |= (region.alpha > 0) & (across > colours.half_width[name])
    # Grown back to the prop's edge, and its blurred rim (half its colour), within the legs' bands;
    # never an arm's pixel.
    prop = cv2.dilate(prop.astype(np.uint8), _square(EDGE_PX + 1)).astype(bool)
    prop &= covered([region for region, _ in legs.values()], (height, width)) & (coverage > 0)
    prop &= ~covered(arms, (height, width))
    if not prop.any():
        return image, mask
    out_mask = mask.copy()
    out_mask[prop & beyond] = 0
    ys, xs = np.nonzero(prop)
    margin = int(np.ceil(4 * FILL_SIGMA_PX))
    y0, y1 = max(0, ys.min() - margin), min(height, ys.max() + margin + 1)
    x0, x1 = max(0, xs.min() - margin), min(width, xs.max() + margin + 1)
    known = plain[y0:y1, x0:x1] & ~prop[y0:y1, x0:x1]
    out = image.copy()
    if known.any():
        filled = fill_from_around(image[y0:y1, x0:x1], known, FILL_SIGMA_PX)
        window = out[y0:y1, x0:x1]
        window[prop[y0:y1, x0:x1]] = np.clip(np.rint(filled[prop[y0:y1, x0:x1]]), 0, 255).astype(np.uint8)
    return out, out_mask


def _square(radius: int) -> np.ndarray:
    """The structuring element reaching ``radius`` pixels each way."""
    return np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)


def covered(regions, shape: tuple[int, int], above: float = 0.0) -> np.ndarray:
    """bool ``shape`` (H, W): the frame's pixels where any of ``regions`` has an alpha above ``above``."""
    out = np.zeros(shape, bool)
    for region in regions:
        x0, y0, x1, y1 = region.box
        out[y0:y1, x0:x1] |= region.alpha > above
    return out


class PropFreeFrames:
    """The target's frames and masks as exemplars read them, props painted out of the legs
    (:func:`repaint_props`), each frame painted when first read (the :data:`CACHED_FRAMES` latest
    kept). ``frames[t]`` uint8 [H, W, 3] and ``masks[t]`` uint8 [H, W] are indexed like the stores
    they wrap, with their ``shape`` and ``len``."""

    def __init__(self, frames: np.ndarray, masks: np.ndarray, keypoints: np.ndarray, first_heldout: int) -> None:
        keypoints = np.asarray(keypoints)
        colours = leg_colours(frames, masks, keypoints, first_heldout)

        @lru_cache(maxsize=CACHED_FRAMES)
        def painted(t: int) -> tuple[np.ndarray, np.ndarray]:
            return repaint_props(np.asarray(frames[t]), np.asarray(masks[t]), keypoints[t], colours)

        self.colours = colours
        self.frames = _PaintedStore(lambda t: painted(int(t))[0], frames.shape)
        self.masks = _PaintedStore(lambda t: painted(int(t))[1], masks.shape)


@dataclass(frozen=True)
class _PaintedStore:
    """One of :class:`PropFreeFrames`' two views: ``read(t)`` as ``store[t]``, with the store's ``shape``."""

    read: Callable[[int], np.ndarray]
    shape: tuple[int, ...]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        return self.read(t)
