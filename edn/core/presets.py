"""Network sizes of the three training stages, by name.

A preset fixes the architecture only; the resolution comes from the working
frames (config ``frames.width``/``height``): the local stage trains at the
working size, the global stage at half of it when the local stage is used and at
the working size otherwise. With the paper's 1024x512 frames the ``paper`` preset
is exactly the paper's schedule: global 512x256, then local 1024x512 (Chan et
al. 2019, section 8.3, following pix2pixHD).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edn.core.errors import EdnError


@dataclass(frozen=True)
class Preset:
    """Sizes of every network. Field names are the checkpoint's ``preset`` keys.

    Main generator (pix2pixHD global generator): ``ngf`` filters after the 7x7
    stem, ``n_downsampling`` stride-2 convolutions (doubling the filters each
    time), ``n_blocks`` residual blocks. Local enhancer: ``local_ngf`` filters
    (its global branch then has ``2 * local_ngf`` filters, which must equal
    ``ngf`` so that the global stage's weights load), ``local_blocks`` residual
    blocks. Temporal PatchGAN: ``ndf`` filters, ``d_layers`` stride-2 layers,
    ``d_scales_global`` scales in the global stage and ``d_scales_local`` in the
    local stage. Face GAN: a global generator with ``face_ngf`` filters,
    ``face_downsampling`` downsamplings and ``face_blocks`` blocks, and a
    single-scale PatchGAN with ``face_ndf`` filters.
    """

    name: str
    ngf: int
    n_downsampling: int
    n_blocks: int
    local_ngf: int
    local_blocks: int
    ndf: int
    d_layers: int
    d_scales_global: int
    d_scales_local: int
    face_ngf: int
    face_downsampling: int
    face_blocks: int
    face_ndf: int

    def __post_init__(self) -> None:
        if self.ngf != 2 * self.local_ngf:
            raise ValueError(f"preset {self.name}: ngf ({self.ngf}) must be 2 * local_ngf ({self.local_ngf})")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this at the global stage's resolution."""
        return 2 ** self.n_downsampling


PRESETS = {
    # The paper's networks (Chan et al. 2019, after pix2pixHD, Wang et al. 2018) and the
    # authors' code: about 182 M generator parameters (docs/training.md, "Presets"); for a GPU.
    "paper": Preset(name="paper", ngf=64, n_downsampling=4, n_blocks=9, local_ngf=32, local_blocks=3,
                    ndf=64, d_layers=3, d_scales_global=2, d_scales_local=3,
                    face_ngf=64, face_downsampling=3, face_blocks=5, face_ndf=64),
    # The demo on a 2-core CPU: global + face stages on the juggler at 256x128 in
    # about ten minutes (measured: README "Training").
    "small": Preset(name="small", ngf=32, n_downsampling=3, n_blocks=4, local_ngf=16, local_blocks=2,
                    ndf=32, d_layers=3, d_scales_global=2, d_scales_local=3,
                    face_ngf=16, face_downsampling=3, face_blocks=2, face_ndf=16),
    # Tests and smoke runs: seconds at 64x32; learns nothing useful.
    "tiny": Preset(name="tiny", ngf=8, n_downsampling=2, n_blocks=1, local_ngf=4, local_blocks=1,
                   ndf=8, d_layers=2, d_scales_global=2, d_scales_local=3,
                   face_ngf=4, face_downsampling=2, face_blocks=1, face_ndf=4),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise EdnError(f"preset {name!r}: unknown (choose one of {', '.join(PRESETS)})") from None


def preset_from_dict(data: dict) -> Preset:
    """Rebuild a preset stored in a checkpoint (which may be a custom one)."""
    return Preset(**data)
