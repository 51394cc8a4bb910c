"""The networks of Everybody Dance Now, built from a :class:`edn.core.presets.Preset`.

``generator``: pix2pixHD global generator or local enhancer (6-channel input:
label + previous frame), upsampling by transposed or resize convolutions
(:data:`UPSAMPLINGS`). ``discriminator``: temporal multi-scale PatchGAN
(12-channel input), or for the frame-by-frame ablation a per-frame one (6
channels; see :mod:`edn.models.temporal_smoothing`). ``face``: the face residual generator and its PatchGAN.
"""

from __future__ import annotations

from torch import nn

from edn.models.compositing import INPUT_CHANNELS as COMPOSITING_INPUTS
from edn.models.compositing import OUTPUT_CHANNELS as COMPOSITING_OUTPUTS
from edn.models.compositing import RESIDUAL_BASE, CompositingGenerator
from edn.models.compositing import input_channels as compositing_input_channels
from edn.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator
from edn.models.face import FaceDiscriminator, FaceGenerator
from edn.models.generator import UPSAMPLINGS, GlobalGenerator, LocalEnhancer
from edn.core.options import exemplar_mode
from edn.core.presets import Preset
from edn.models.temporal_smoothing import discriminator_channels

GENERATOR_KINDS = ("global", "local")

__all__ = ["CompositingGenerator", "FaceDiscriminator", "FaceGenerator", "GlobalGenerator", "LocalEnhancer", "MultiscaleDiscriminator",
           "PatchDiscriminator", "build_discriminator", "build_face_discriminator", "build_face_generator",
           "build_generator", "UPSAMPLINGS"]


def build_generator(preset: Preset, kind: str, compositing: bool = False, upsampling: str = "transposed",
                    exemplar: bool | str = False, residual_base: str = RESIDUAL_BASE) -> nn.Module:
    """The main generator: ``kind`` "global" (G1) or "local" (G2 around G1).

    ``compositing``: a :class:`CompositingGenerator` around it, which draws the
    person and a mask over the background plate (9 input, 4 output channels).
    ``upsampling``: "transposed" (pix2pixHD's and the paper's transposed
    convolutions) or "resize" (upsample, then convolve; :mod:`edn.models.generator`).
    ``exemplar``: option ``training.exemplar``'s mode (True and False: input and none): the
    compositing generator also takes the warped exemplar and its validity (4 more input
    channels), and as a residual draws a correction of the exemplar (:mod:`edn.models.compositing`),
    added off the exemplar's person to ``residual_base`` (a checkpoint's :attr:`residual_base`).
    """
    exemplar = exemplar_mode(exemplar)
    if exemplar != "none" and not compositing:
        raise ValueError("a generator conditioned on the warped exemplar is a compositing one")
    channels = ({"input_channels": compositing_input_channels(exemplar), "output_channels": COMPOSITING_OUTPUTS}
                if compositing else {})
    if kind == "global":
        body = GlobalGenerator(preset.ngf, preset.n_downsampling, preset.n_blocks, **channels, upsampling=upsampling)
    elif kind == "local":
        body = LocalEnhancer(preset.local_ngf, preset.local_blocks, preset.n_downsampling, preset.n_blocks,
                             **channels, upsampling=upsampling)
    else:
        raise ValueError(f"generator kind {kind!r}: must be one of {GENERATOR_KINDS}")
    return CompositingGenerator(body, exemplar, residual_base) if compositing else body


def build_discriminator(preset: Preset, kind: str, temporal: bool = True) -> MultiscaleDiscriminator:
    """The PatchGAN of the global (2 scales in the paper) or local stage (3 scales):
    temporal (judges a pair of frames) or, with ``temporal=False``, per frame."""
    scales = {"global": preset.d_scales_global, "local": preset.d_scales_local}[kind]
    return MultiscaleDiscriminator(discriminator_channels(temporal), preset.ndf, preset.d_layers, scales)


def build_face_generator(preset: Preset, upsampling: str = "transposed", exemplar: bool = False,
                         start_unchanged: bool = False) -> FaceGenerator:
    """G_f, upsampling as the main generator it corrects does, and conditioned on the warped
    exemplar's face when it is (``exemplar``); ``start_unchanged``: its residual starts at 0
    (behind a main generator that corrects the exemplar as a residual)."""
    return FaceGenerator(preset.face_ngf, preset.face_downsampling, preset.face_blocks, upsampling, exemplar,
                         start_unchanged)


def build_face_discriminator(preset: Preset) -> FaceDiscriminator:
    return FaceDiscriminator(preset.face_ndf, preset.d_layers)
