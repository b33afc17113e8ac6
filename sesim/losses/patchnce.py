"""PatchNCE (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image Translation").

Two pieces, used by :class:`sesim.methods.cut.CUTMethod`:

- :class:`PatchSampleMLP` picks random spatial positions of named feature maps (the same
  positions for every image of the batch, and the same positions for the query and the key side)
  and projects the feature vector at each position with a small per-layer MLP onto the unit sphere.
- :func:`patch_nce_loss` is the InfoNCE loss over those patch embeddings: the patch of the
  translation at position ``i`` must pick the patch of the source at the same position among the
  source's other patches.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets.init import init_weights
from ..ops.selfsim import sample_queries

__all__ = ["PatchSampleMLP", "patch_nce_loss"]


class PatchSampleMLP(nn.Module):
    """Per-layer patch sampler + 2-layer MLP projection head (CUT's ``netF = mlp_sample``).

    For each layer ``name`` with ``channels[name] = C`` the head is
    ``Linear(C, nc) -> ReLU -> Linear(nc, nc)``, kept in :attr:`mlps` (an ``nn.ModuleDict`` keyed
    by layer name). Unlike CUT, which creates the heads on the first forward pass (and hence needs
    a "data-dependent initialisation" step before its optimiser can exist), the heads are built here
    from the known channel counts, so the module has all its parameters right after construction.

    Args:
        channels: ``{layer name: channel count}``, e.g. a subset of
            :meth:`sesim.nets.resnet_generator.ResnetGenerator.layer_channels`.
        nc: width of both MLP layers (CUT's ``--netF_nc``, 256).
        init, init_gain: weight initialisation (:func:`sesim.nets.init.init_weights`); the default
            N(0, 0.02) kernels with zero biases.
    """

    def __init__(self, channels: Mapping[str, int], nc: int = 256, *, init: str = "normal",
                 init_gain: float = 0.02) -> None:
        super().__init__()
        if not channels:
            raise ValueError("PatchSampleMLP needs at least one layer")
        if nc < 1:
            raise ValueError(f"nc must be >= 1, got {nc}")
        self.nc = nc
        self.mlps = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(c, nc), nn.ReLU(inplace=True), nn.Linear(nc, nc))
            for name, c in channels.items()
        })
        init_weights(self, init, init_gain)

    def layer_names(self) -> list[str]:
        return list(self.mlps.keys())

    def forward(
        self,
        feats: Mapping[str, Tensor],
        num_patches: int,
        patch_ids: Mapping[str, Tensor] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Sample and embed patches of each feature map.

        Args:
            feats: ``{name: (N, C, H, W)}``, names among :meth:`layer_names`.
            num_patches: positions ``P`` per layer (the same for every image of the batch), distinct and
                drawn by ``torch.randperm`` on the CPU from torch's global RNG; ``<= 0`` or ``>= H * W``
                means all ``H * W`` positions in order (no random numbers are drawn then).
            patch_ids: ``{name: (P,) LongTensor}`` from an earlier call, to embed the same
                positions (the key side first, then the query side reuses its ids). When given,
                ``num_patches`` is ignored.

        Returns:
            ``(embeddings, ids)``: ``embeddings[name]`` is ``(N * P, nc)``, image-major (rows
            ``n * P .. n * P + P - 1`` belong to image ``n``), each row L2-normalised;
            ``ids[name]`` is the ``(P,)`` LongTensor of flat positions ``y * W + x`` used.
        """
        out: dict[str, Tensor] = {}
        ids: dict[str, Tensor] = {}
        for name, feat in feats.items():
            if name not in self.mlps:
                raise KeyError(f"PatchSampleMLP has no head for layer {name!r}; it has {self.layer_names()}")
            if feat.dim() != 4:
                raise ValueError(f"layer {name!r}: expected an (N, C, H, W) map, got shape {tuple(feat.shape)}")
            n, c, h, w = feat.shape
            if patch_ids is not None:
                if name not in patch_ids:
                    raise KeyError(f"patch_ids has no entry for layer {name!r}")
                idx = patch_ids[name]
            else:
                idx = sample_queries(h, w, num_patches)  # the structure loss's random query sampling
            flat = feat.flatten(2).transpose(1, 2)  # (N, H*W, C)
            sampled = flat[:, idx.to(feat.device), :].flatten(0, 1)  # (N*P, C)
            out[name] = F.normalize(self.mlps[name](sampled), dim=1, eps=1e-7)
            ids[name] = idx
        return out, ids


def patch_nce_loss(
    query: Tensor,
    key: Tensor,
    *,
    temperature: float = 0.07,
    batch_size: int,
    negatives_from_minibatch: bool = False,
) -> Tensor:
    """PatchNCE: each query patch must identify the key patch at its own position.

    With ``q_i`` the query rows (patches of the translation) and ``k_j`` the key rows (patches of the
    source at the same positions), the logits of row ``i`` are, all divided by ``temperature``:

    - the positive ``q_i . k_i`` (index 0),
    - the negatives ``q_i . k_j`` for every other patch ``j != i`` of the *same image* (or, with
      ``negatives_from_minibatch``, of all images of the batch),

    and the loss of row ``i`` is the cross-entropy with target 0,
    ``-log(exp(q_i.k_i / T) / sum over positive and negatives of exp(q_i.k / T))``.

    The keys are detached: gradients flow only through ``query``. The features are used as given
    (the MLP head of :class:`PatchSampleMLP` already L2-normalises them). CUT fills the diagonal
    (the positive pair seen again as a "negative") with -10 before dividing by the temperature; it
    is removed exactly here (-inf), which gives the same value in float32 for unit-length features.

    Args:
        query: ``(N * P, D)`` query patches, image-major (see :class:`PatchSampleMLP`).
        key: ``(N * P, D)`` key patches at the same positions.
        temperature: the softmax temperature ``T`` (0.07 in CUT).
        batch_size: ``N``, the number of images the rows are grouped into.
        negatives_from_minibatch: draw negatives from all ``N * P`` patches instead of the ``P``
            patches of the same image (CUT's ``--nce_includes_all_negatives_from_minibatch``).

    Returns:
        ``(N * P,)`` per-patch losses (mean it for a scalar).
    """
    if query.dim() != 2 or query.shape != key.shape:
        raise ValueError(f"query and key must both be (N*P, D), got {tuple(query.shape)} and {tuple(key.shape)}")
    rows, dim = query.shape
    if batch_size < 1 or rows % batch_size:
        raise ValueError(f"{rows} patch rows cannot be split into batch_size={batch_size} images")
    key = key.detach()
    positive = (query * key).sum(dim=1, keepdim=True)  # (N*P, 1)
    groups = 1 if negatives_from_minibatch else batch_size
    q = query.reshape(groups, -1, dim)
    k = key.reshape(groups, -1, dim)
    m = q.shape[1]
    negatives = torch.bmm(q, k.transpose(1, 2))  # (groups, m, m); the diagonal repeats the positive
    diagonal = torch.eye(m, dtype=torch.bool, device=query.device)
    negatives = negatives.masked_fill(diagonal, float("-inf")).reshape(rows, m)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    target = torch.zeros(rows, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target, reduction="none")
