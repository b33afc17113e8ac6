"""sesim: structure-preserving unpaired image-to-image translation with the spatially-correlative loss.

The loss on its own::

    from sesim import SpatialCorrelativeLoss
    structure = SpatialCorrelativeLoss()          # FSeSim, paper settings (needs ImageNet VGG16)
    loss = structure(source, translation)         # (N, 3, H, W) images in [-1, 1] -> scalar
"""

from .losses.spatial import PAPER_SETTINGS, PUBLIC_CODE_SETTINGS, SpatialCorrelativeLoss, StructureHead
from .nets.vgg import VGG16Features, WeightsNotFoundError

__version__ = "0.1.0"

__all__ = [
    "SpatialCorrelativeLoss",
    "StructureHead",
    "VGG16Features",
    "WeightsNotFoundError",
    "PAPER_SETTINGS",
    "PUBLIC_CODE_SETTINGS",
    "__version__",
]
