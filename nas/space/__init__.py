"""Search spaces (YAML), architecture encoding, sampling and membership."""

from nas.space._arch import Arch, BlockArch
from nas.space._schema import (
    ALLOWED_KERNELS,
    SPACES_DIR,
    HeadConfig,
    SpaceConfig,
    StageConfig,
    StemConfig,
    load_space_config,
    parse_space,
)
from nas.space._slots import KindSlot, Slot
from nas.space._space import SearchSpace, load_space

__all__ = [
    "ALLOWED_KERNELS",
    "SPACES_DIR",
    "Arch",
    "BlockArch",
    "HeadConfig",
    "KindSlot",
    "SearchSpace",
    "Slot",
    "SpaceConfig",
    "StageConfig",
    "StemConfig",
    "load_space",
    "load_space_config",
    "parse_space",
]
