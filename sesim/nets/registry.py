"""Every :class:`~sesim.nets.described.Described` network class, imported so that
:func:`~sesim.nets.described.build_network` can rebuild any of them by name."""

from . import multiscale_d, munit, patchgan, resnet_generator, stylegan2  # noqa: F401
