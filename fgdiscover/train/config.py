"""Resolved settings of a FineGAN run and the named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import FGDError


@dataclass(frozen=True)
class GANConfig:
    """Everything that defines a FineGAN training run (saved as config.json).

    Model: ``resolution`` (px), code sizes, noise size, generator / discriminator widths.
    Optimisation (the paper's unless noted): Adam ``lr``, ``betas``; batch size; ``iters``
    in total, the last ``hard_negative_iters`` of which form the hard-negative phase (every
    other step trains on the ``batch_size`` codes, out of ``hard_negative_factor`` times as
    many, whose child code D_c recognises worst); background loss weight; generator EMA.
    Our additions to FineGAN (``faithful()`` turns them off): ``child_within_parent``
    confines the child mask to the parent mask; ``mask_weight`` weighs a hinge keeping the
    parent mask's area within ``mask_area``, ``binary_weight`` a term pushing masks to 0/1;
    ``bg_aux_weight`` weighs the generator's background-vs-object term on B (FineGAN's 1;
    10 made inverted masks in our runs);
    ``parent_info``: what D_p reads the parent code from, ``"masked"`` (P_m * P_f, FineGAN)
    or ``"mask"`` (P_m alone, so that the parent code must live in the silhouette);
    ``d_norm``: D_b's and D_c's normalisation, ``"batch"`` (FineGAN) or ``"spectral"``.
    ``border_band``: for images without a bounding box, the band of this fraction of the
    side along each edge counts as background for D_b's auxiliary head, the central box as
    the object (see README, "Without bounding boxes"). ``crop``: how images are framed,
    ``"full"`` (the centre square; boxes only label D_b's patches) or ``"bbox"`` (FineGAN's
    1.5x box crop); embedding uses the same framing as training.
    """

    resolution: int = 32
    n_parent: int = 4
    n_child: int = 12
    z_dim: int = 100
    ngf: int = 16
    ndf: int = 16
    n_res: int = 2
    batch_size: int = 32
    iters: int = 3000
    hard_negative_iters: int = 100
    hard_negative_factor: int = 10
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    bg_weight: float = 10.0
    ema_decay: float = 0.999
    border_band: float = 0.25
    crop: str = "full"
    child_within_parent: bool = True
    mask_area: tuple[float, float] = (0.15, 0.7)
    mask_weight: float = 10.0
    binary_weight: float = 1.0
    bg_aux_weight: float = 1.0
    parent_info: str = "mask"
    d_norm: str = "spectral"
    checkpoint_every: int = 500
    log_every: int = 25
    seed: int = 0

    def __post_init__(self):
        if self.n_parent < 1 or self.n_child < self.n_parent or self.n_child % self.n_parent:
            raise FGDError(
                f"--n-child ({self.n_child}) must be a multiple of --n-parent ({self.n_parent})")
        if self.resolution not in (16, 32, 64, 128, 256):
            raise FGDError(f"resolution must be one of 16, 32, 64, 128, 256, got {self.resolution}")
        if self.iters < 1 or self.batch_size < 2:
            raise FGDError("iters must be >= 1 and batch size >= 2")
        if self.parent_info not in ("mask", "masked"):
            raise FGDError(f"parent_info must be 'mask' or 'masked', got {self.parent_info!r}")
        if self.d_norm not in ("batch", "spectral"):
            raise FGDError(f"d_norm must be 'batch' or 'spectral', got {self.d_norm!r}")
        if self.crop not in ("full", "bbox"):
            raise FGDError(f"crop must be 'full' or 'bbox', got {self.crop!r}")
        if self.hard_negative_iters < 0:
            raise FGDError("hard_negative_iters must be >= 0")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise FGDError("checkpoint_every and log_every must be >= 1")
        if self.hard_negative_iters > self.iters:
            # a run shortened with --iters keeps its hard-negative phase at a tenth of it
            object.__setattr__(self, "hard_negative_iters", self.iters // 10)

    def replace(self, **changes) -> "GANConfig":
        """A copy with the given fields changed; None values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def faithful(self) -> "GANConfig":
        """The same run with FineGAN's original objective (no mask constraints)."""
        return self.replace(child_within_parent=False, mask_weight=0.0, binary_weight=0.0,
                            parent_info="masked", d_norm="batch")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "GANConfig":
        """The config saved by :meth:`to_json`, validated: every setting present, none
        unknown, each of its type (a config read from a file is never trusted)."""
        if not isinstance(data, dict):
            raise FGDError(f"a config must be a JSON object, got {type(data).__name__}")
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown, missing = set(data) - set(fields), set(fields) - set(data)
        if unknown:
            raise FGDError(f"unknown settings in config: {', '.join(sorted(unknown))}")
        if missing:
            raise FGDError(f"settings missing from config: {', '.join(sorted(missing))}")
        values = {}
        for key, kind in fields.items():
            values[key] = _checked(key, data[key], kind)
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> "GANConfig":
        """:meth:`from_json` of a config.json file; FGDError naming the file otherwise."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FGDError(f"no config.json in {path.parent}") from None
        except (OSError, ValueError) as e:
            raise FGDError(f"cannot read {path}: {e}") from None
        try:
            return cls.from_json(data)
        except FGDError as e:
            raise FGDError(f"{path}: {e}") from None

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _checked(key: str, value, kind: str):
    """``value`` of setting ``key`` if it has the declared type ``kind`` (an annotation
    string); ints are accepted for floats and a 2-list for a pair."""
    if kind == "tuple[float, float]":
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_number, value)):
            return tuple(float(v) for v in value)
    elif kind == "float":
        if _is_number(value):
            return float(value)
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "str":
        if isinstance(value, str):
            return value
    else:  # a new field with a type this check does not know yet
        raise FGDError(f"setting {key!r} has an unchecked type {kind}")
    raise FGDError(f"setting {key!r} must be {kind}, got {value!r}")


PRESETS: dict[str, GANConfig] = {
    # the paper's configuration for CUB (GPU): 128 px, 20 parents, 200 children,
    # batch 16, ~600 epochs (~440k iterations) and a 1,500-iteration hard-negative phase
    "paper": GANConfig(resolution=128, n_parent=20, n_child=200, ngf=64, ndf=64, n_res=2,
                       batch_size=16, iters=441_500, hard_negative_iters=1_500,
                       checkpoint_every=5_000, log_every=100),
    # trains a disentangled model on the synthetic set in about 15 minutes on 2 CPU cores
    # (benchmarks/README.md)
    "cpu": GANConfig(),
    # for tests: a few seconds
    "tiny": GANConfig(resolution=16, n_parent=2, n_child=4, z_dim=8, ngf=4, ndf=4, n_res=1,
                      batch_size=4, iters=4, hard_negative_iters=2, hard_negative_factor=2,
                      checkpoint_every=2, log_every=1),
}


def preset(name: str) -> GANConfig:
    """The preset called ``name``; FGDError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise FGDError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
