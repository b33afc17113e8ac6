"""Typed training configuration: one dataclass per concern, presets from TOML, saved whole as JSON.

Every field name is unique across sections, so each maps to one command-line flag
(``patch_size`` -> ``--patch-size``); its help text and allowed range live next to the field.
Resolution order: dataclass defaults (the paper's single-modal settings), then each ``--preset`` in
order (``sesim/presets/<name>.toml``), then explicit flags.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .ops.selfsim import PAPER_PATCH_SIZE
from .ranges import Range, count, fraction, non_negative, positive
from .speedups import PRECISIONS

#: training recipes (``--method``) and translation modes (``--mode``); the pairs that exist are in
#: :data:`sesim.methods.RECIPES`
METHOD_NAMES = ("sesim", "cyclegan", "cut")
MODES = ("single-modal", "multimodal", "single-image", "exemplar")
#: content losses of the sesim method (``--structure``), built by :func:`sesim.factory.build_structure_loss`
STRUCTURES = ("fsesim", "lsesim", "perceptual", "l1", "patchnce", "none")


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A field with its help text; ``kw`` goes into its metadata: ``choices``, ``range`` (the allowed
    values of a numeric option, a :class:`~sesim.ranges.Range`, checked by :func:`convert`; every
    numeric option without choices has one, tests/test_cli_validation.py checks), ``resume``
    (changeable on resume), ``aliases`` (older names)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


#: the range of every loss weight (``lambda_*``)
WEIGHT = non_negative(float)


@dataclass
class DataConfig:
    """Where the images come from and how they are cropped (:mod:`sesim.data`)."""

    data: str | None = _f(None, "dataset root holding trainA/ and trainB/ (and testA/, testB/)")
    dir_a: str | None = _f(None, "explicit folder of domain-A (source) training images")
    dir_b: str | None = _f(None, "explicit folder of domain-B (target) training images")
    direction: str = _f("AtoB", "AtoB translates A into B; BtoA swaps the domains", choices=("AtoB", "BtoA"))
    size: int = _f(256, "training crop size in pixels (a multiple of 4)", range=count(8, multiple=4))
    load_size: int | None = _f(None, "resize before cropping (default: size * 286 / 256)", range=count(8))
    preprocess: str = _f("resize_and_crop", "resize_and_crop | scale_shortside_and_crop | crop | resize",
                         choices=("resize_and_crop", "scale_shortside_and_crop", "crop", "resize"))
    flip: bool = _f(True, "random horizontal flips")
    channels: int = _f(3, "image channels: 3 (RGB) or 1 (greyscale model)", choices=(1, 3))
    workers: int = _f(-1, "data-loading worker processes (-1: one per spare CPU core, at most 4)", resume=True,
                      range=count(-1, 64))
    skip_unreadable: bool = _f(False, "drop unreadable image files (with a warning) instead of stopping")


@dataclass
class GeneratorConfig:
    """The translation network (:mod:`sesim.factory` builds it; the family follows ``--mode``) and the
    terms on the generator itself (identity, style reconstruction). ``norm``, ``antialias`` and the
    initialisation apply to the discriminator too."""

    ngf: int = _f(64, "generator base channels", range=count(1))
    n_blocks: int = _f(9, "generator residual blocks (9 for 256 px, 6 for smaller images)", range=count(0))
    norm: str = _f("instance", "normalisation layers of G and D", choices=("instance", "batch", "none"))
    antialias: bool = _f(False, "blur-pool down/upsampling in G and D (the public CUT / F-LSeSim networks) instead "
                                "of CycleGAN's strided / transposed convs (the paper's description); see the README "
                                "for what each gives")
    upsample: str = _f("auto", "upsampling layers of the ResNet generator: transposed (CycleGAN's convT), blur (the "
                               "public code's, with --antialias), nearest (nearest x2 + conv, no checkerboard); auto "
                               "follows --antialias", choices=("auto", "transposed", "blur", "nearest"))
    init: str = _f("normal", "weight initialisation of G and D", choices=("normal", "xavier", "kaiming", "orthogonal"))
    init_gain: float = _f(0.02, "std / gain of the weight initialisation", range=positive())
    lambda_identity: float = _f(0.0, "weight of L1(G(b), b) (identity loss)", range=WEIGHT)
    # --mode multimodal (sesim/nets/munit.py): ngf and n_blocks (residual blocks of the content encoder and decoder)
    style_dim: int = _f(8, "multimodal: numbers in a style code (sampled from N(0, I))", range=count(1))
    mlp_dim: int = _f(256, "multimodal: hidden width of the MLP from style code to AdaIN parameters", range=count(1))
    lambda_style: float = _f(1.0, "multimodal: weight of the style reconstruction L1(E_s(G(a, s)), s); > 0 adds a "
                                  "style encoder (needed by translate --style-from), 0 trains without one",
                             range=WEIGHT)
    # --mode single-image (sesim/nets/stylegan2.py): ngf and n_blocks as above
    n_downsampling: int = _f(2, "single-image: downsamplings of the StyleGAN2-style generator", range=count(0, 6))
    noise_inputs: bool = _f(True, "single-image: noise inputs in the generator's styled convs (training only)")


@dataclass
class DiscriminatorConfig:
    """The discriminator and its adversarial loss."""

    ndf: int = _f(64, "discriminator base channels", range=count(1))
    n_layers_d: int = _f(3, "PatchGAN conv layers (3 = 70x70 receptive field)", range=count(1))
    n_scales_d: int = _f(3, "multimodal: scales of the multi-scale discriminator (no normalisation, leaky ReLU, "
                            "as MUNIT; --norm only affects the other modes)", range=count(1))
    gan_mode: str = _f("lsgan", "adversarial loss", choices=("lsgan", "vanilla", "nonsaturating", "hinge"))
    lambda_gan: float = _f(1.0, "weight of the adversarial loss", range=WEIGHT)
    pool_size: int = _f(50, "image pool size for D (0 disables)", range=count(0))


@dataclass
class StructureConfig:
    """The content (structure) loss of the sesim method: F/LSeSim and its ablations (:mod:`sesim.losses.spatial`)."""

    structure: str = _f("fsesim", "content loss of the sesim method: fsesim (fixed pretrained features), lsesim "
                                  "(learned heads); ablations: perceptual (feature L1), l1 (pixels), patchnce (CUT's "
                                  "loss, no identity term), none (GAN only)",
                        choices=STRUCTURES)
    backbone: str = _f("auto", "feature network of the structure loss: auto (ImageNet VGG16 if its file is found, else "
                               "the ImageNet EfficientNet-Lite0 that installs with sesim), vgg16 (the paper's), "
                               "efficientnet-lite0", choices=("auto", "vgg16", "efficientnet-lite0"))
    backbone_weights: str = _f("auto", "weights of --backbone: auto | imagenet | random (warned: a test fixture) | "
                                       "path to a state dict", aliases=("vgg_weights",))
    layers: tuple[str, ...] | None = _f(None, "backbone layers, comma-separated (default: the backbone's, VGG16 "
                                              "relu3_1,relu4_1, EfficientNet-Lite0 stage2,stage3)")
    num_queries: int = _f(256, "query locations per layer (N_s)", range=count(1))
    sampling: str = _f("random", "query sampling", choices=("random", "grid"))
    patch_size: int | None = _f(PAPER_PATCH_SIZE, "local window side in feature positions; none = global maps",
                                range=count(1))
    keys: str = _f("window", "self-similarity keys: window (paper) or sampled (STROTSS-like ablation, Table 3 row A)",
                   choices=("window", "sampled"))
    perceptual_layers: tuple[str, ...] | None = _f(None, "backbone layers of --structure perceptual (default: VGG16 "
                                                         "relu3_3, EfficientNet-Lite0 stage2)")
    feature_norm: str = _f("l2", "feature normalisation before self-similarity",
                           choices=("l2", "centered_l2", "tanh"))
    distance: str = _f("cos", "map distance: cos (1 - cosine) or l1", choices=("cos", "l1"))
    mask_keep: float | None = _f(None, "public-code masking: keep this top fraction of each map (e.g. 0.25)",
                                 range=fraction(lo_open=True))
    mask_from: str = _f("source", "which map's top entries --mask-keep keeps: source, or target (the translation's, "
                                  "as the public code)", choices=("source", "target"))
    smooth_l1: bool = _f(False, "public-code criterion: SmoothL1 of the map distance (the public code without "
                                "--use_norm) instead of the distance itself")
    tanh_scale: float = _f(10.0, "divisor inside tanh for --feature-norm tanh", range=positive())
    temperature: float = _f(0.07, "LSeSim InfoNCE temperature", range=positive())
    augment: str = _f("color", "LSeSim positives: color (colour jitter, public code) or color_blur (adds blur+noise)",
                      choices=("color", "color_blur"))
    train_backbone: bool = _f(False, "LSeSim: also train the backbone with the InfoNCE objective (paper wording; the "
                                     "public code keeps it frozen, the default)")
    head_on_translation: bool = _f(False, "LSeSim: also use (source, translation) as a positive pair (public code)")
    positive_vs_other: bool = _f(False, "LSeSim InfoNCE: also the positive's maps against the other image's as "
                                        "negatives (public code)")
    head_warmup: int = _f(0, "LSeSim: train only the structure heads for this many steps before the generator and "
                             "discriminator start (the steps count towards --steps; 0 = off, the paper and public "
                             "code)", range=count(0))
    lambda_structure: float = _f(10.0, "weight of the structure loss (lambda)", range=WEIGHT)
    lambda_structure_identity: float = _f(0.0, "weight of the structure loss between b and G(b)", range=WEIGHT)


@dataclass
class NCEConfig:
    """PatchNCE on the generator's own encoder layers (CUT, FastCUT, SinCUT; :mod:`sesim.losses.patchnce`)."""

    lambda_nce: float = _f(1.0, "CUT: weight of the PatchNCE loss (FastCUT preset: 10)", range=WEIGHT)
    nce_layers: tuple[str, ...] = _f(("input", "down1", "down2", "block1", "block5"),
                                     "CUT: generator encoder layers for PatchNCE, by name")
    nce_idt: bool = _f(True, "CUT: also apply PatchNCE between b and G(b) (FastCUT preset: off)")
    nce_temperature: float = _f(0.07, "CUT: PatchNCE temperature", range=positive())
    nce_num_patches: int = _f(256, "CUT: patches sampled per layer", range=count(1))
    nce_mlp_channels: int = _f(256, "CUT: width of the 2-layer MLP projection head", range=count(1))
    flip_equivariance: bool = _f(False, "CUT: randomly flip the input and un-flip the features (FastCUT preset: on)")
    nce_negatives_from_minibatch: bool = _f(False, "single-image SinCUT: PatchNCE negatives from all patches of "
                                                   "the batch (sincut preset: on)")


@dataclass
class CycleConfig:
    """CycleGAN's cycle consistency (its identity term is ``lambda_identity`` times this weight)."""

    lambda_cycle: float = _f(10.0, "CycleGAN: weight of each cycle-consistency term", range=WEIGHT)


@dataclass
class SingleImageConfig:
    """``--mode single-image``: random zoomed patches of one image per domain, and D's gradient penalty."""

    zoom_min: float = _f(0.25, "single-image: smallest zoom of the random patches (0.25: a patch covers 4x the pixels)",
                         range=fraction(lo_open=True))
    zoom_max: float = _f(1.0, "single-image: largest zoom of the random patches (1: full resolution)",
                         range=fraction(lo_open=True))
    gradient_penalty: str = _f("r1", "single-image: D regulariser: r1 (zero-centred on real patches, SinCUT / "
                                     "StyleGAN2), wgangp (one-centred on interpolates, public F-LSeSim sinsc code), none",
                               choices=("r1", "wgangp", "none"))
    lambda_gp: float = _f(1.0, "single-image: weight of the gradient penalty (R1 uses lambda / 2 * |grad|^2)",
                          range=WEIGHT)


@dataclass
class OptimConfig:
    """Adam and the learning-rate schedule."""

    lr: float = _f(1e-4, "Adam learning rate of G and D", range=positive())
    lr_head: float | None = _f(None, "Adam learning rate of the LSeSim heads (default: --lr)", range=positive())
    beta1: float = _f(0.5, "Adam beta1", range=fraction(hi_open=True))
    beta2: float = _f(0.999, "Adam beta2", range=fraction(hi_open=True))
    decay_start: float = _f(0.5, "fraction of the steps after which the LR decays linearly to 0", range=fraction())


@dataclass
class RunConfig:
    """The training loop: length, seed, device, run folder, outputs; execution options. Fields marked
    ``resume`` may be changed when a run is resumed (``sesim train --resume RUN --steps N``)."""

    steps: int = _f(10000, "total training steps (one step = one batch)", resume=True, range=count(0))
    batch_size: int = _f(1, "images per step", range=count(1))
    seed: int = _f(0, "random seed (data order, crops, initialisation, query sampling)", range=count(0, 2**63 - 1))
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps", resume=True)
    runs: str = _f("runs", "parent folder of run folders")
    name: str | None = _f(None, "run folder name (default: a numbered name from the data folder)")
    checkpoint_every: int = _f(500, "steps between resumable checkpoints", resume=True, range=count(1))
    sample_every: int = _f(500, "steps between sample grids", resume=True, range=count(1))
    log_every: int = _f(25, "steps between log lines (jsonl + TensorBoard)", resume=True, range=count(1))
    num_samples: int = _f(6, "test images shown in each sample grid", resume=True, range=count(0))
    precision: str = _f("fp32", "fp32, or bf16: the training step under bfloat16 autocast (weights and optimiser "
                                "states stay fp32; fp32 is the default because reduced precision is known to "
                                "destabilise GAN training here)", choices=PRECISIONS)
    channels_last: bool = _f(False, "networks and batches in channels-last (NHWC) memory order (helps on CUDA)",
                             resume=True)
    compile: bool = _f(False, "torch.compile the networks in place (slow first steps; checkpoints unchanged)",
                       resume=True)
    compile_backend: str = _f("inductor", "torch.compile backend for --compile (inductor, aot_eager, eager, ...)",
                              resume=True)
    eval_every: int = _f(0, "steps between test-set scores (FD/KD of translated testA vs testB with the best "
                            "available extractor, logged and kept in metrics.json); 0 = off", resume=True,
                         range=count(0))
    eval_images: int = _f(200, "at most this many testA/testB images for --eval-every", resume=True, range=count(2))
    snapshot_every: int = _f(0, "steps between generator snapshots kept in RUN/snapshots/ (weights only, never "
                                "overwritten; score them all with `sesim evaluate --run RUN --snapshots all`); "
                                "0 = off", resume=True, range=count(0))


@dataclass
class ExemplarConfig:
    """``--mode exemplar`` (MCL-Net, ``sesim/methods/exemplar.py``; docs/exemplar.md). The ablation rows of the
    paper's Table 3 are presets: exemplar-spade, exemplar-cor, exemplar-mcl, exemplar-scm, exemplar (MCL-Net)."""

    exemplars: str | None = _f(None, "exemplar: folder of exemplar photos drawn for training steps that do not use a "
                                     "pseudo exemplar (default: the training photos, trainB)")
    pseudo_exemplar: float = _f(0.5, "exemplar: fraction of steps whose exemplar is a geometrically distorted copy of "
                                     "the ground truth (then the warp has a known target, the pseudo-pair term); the "
                                     "others draw another training photo", range=fraction())
    correspondence: bool = _f(True, "exemplar: build the correspondence and warp the exemplar (off: the SPADE-only "
                                    "baseline, the exemplar reaches the generator unaligned)")
    scm: bool = _f(True, "exemplar: append the self-correlation map embedding (SCM, Eq. 2) to each descriptor")
    scm_dim: int = _f(256, "exemplar: size of the SCM embedding (paper: 256)", range=count(1))
    corr_channels: int = _f(64, "exemplar: feature channels of the encoders E_X and E_Z", range=count(1))
    corr_temperature: float = _f(0.01, "exemplar: softmax temperature of the correspondence (on cosines)",
                                 range=positive())
    mcl_margin: float = _f(0.4, "exemplar: additive angular margin m of the marginal contrastive loss, radians "
                                "(paper: 0.4; 0 = plain contrastive loss)", range=Range(0.0, 1.5, float))
    mcl_temperature: float = _f(0.07, "exemplar: temperature tau of the marginal contrastive loss (scale s = 1/tau)",
                                range=positive())
    spade_hidden: int = _f(64, "exemplar: hidden channels of each SPADE layer", range=count(1))
    n_up: int = _f(3, "exemplar: upsamplings of the SPADE generator (its stride is 2**n_up)", range=count(1, 6))
    lambda_cyc: float = _f(1.0, "exemplar: weight of the warping cycle loss |T'TZ - Z|_1 (lambda_1)", range=WEIGHT)
    lambda_fcst: float = _f(10.0, "exemplar: weight of the feature consistency loss |E_X(X) - E_Z(Y)|_1 (lambda_2)",
                            range=WEIGHT)
    lambda_mcl: float = _f(1.0, "exemplar: weight of the marginal contrastive loss (lambda_3; 0 = the CoCosNet-like "
                                "+COR row)", range=WEIGHT)
    lambda_perc: float = _f(0.2, "exemplar: weight of the perceptual loss to the ground truth (lambda_4; its L1 on "
                                 "EfficientNet-Lite0 features starts near 8, 5x the other terms)", range=WEIGHT)
    lambda_app: float = _f(5.0, "exemplar: weight of the pseudo-pair appearance term on --pse-layers (not in the "
                                "paper; 0 = off)", range=WEIGHT)
    lambda_cxt: float = _f(1.0, "exemplar: weight of the contextual loss to the exemplar (lambda_5)", range=WEIGHT)
    lambda_pse: float = _f(10.0, "exemplar: weight of the pseudo-pair loss |TZ - Y|_1 on pseudo exemplars (lambda_6)",
                           range=WEIGHT)
    perc_layers: tuple[str, ...] | None = _f(None, "exemplar: backbone layers of the perceptual loss (default: "
                                                   "EfficientNet-Lite0 stage3,stage4; VGG16 relu4_1,relu5_1)")
    pse_layers: tuple[str, ...] | None = _f(None, "exemplar: low-level backbone layers compared with the ground truth "
                                                  "on pseudo pairs only, where it has the exemplar's appearance "
                                                  "(default: EfficientNet-Lite0 stem,stage2; VGG16 relu1_1,relu2_1; "
                                                  "off: the paper's terms only)")
    cxt_layers: tuple[str, ...] | None = _f(None, "exemplar: backbone layers of the contextual loss (default: "
                                                  "EfficientNet-Lite0 stage2,stage3,stage4; VGG16 relu2_1,relu3_1,"
                                                  "relu4_1)")
    lr_d: float = _f(4e-4, "exemplar: Adam learning rate of the discriminator (paper: 4e-4; --lr is the generator's, "
                           "paper 1e-4)", range=positive())


#: section names of older ``config.json`` files and presets; their options are routed by name
#: (every option name is unique), so old run folders and user presets keep working
LEGACY_SECTIONS = ("model", "loss")
#: options that are fields of the whole configuration, not of a section (older files kept ``mode`` under ``model``)
TOP_LEVEL = ("method", "mode")


@dataclass
class TrainConfig:
    """The whole resolved configuration of a run (written to ``config.json`` in the run folder): the
    recipe (``method``, ``mode``) and one section per component. A method takes only the sections it
    declares (:attr:`sesim.methods.Method.sections`)."""

    method: str = _f("sesim", "training recipe: sesim (F/LSeSim), cyclegan or cut (CUT / FastCUT / SinCUT)",
                     choices=METHOD_NAMES)
    mode: str = _f("single-modal", "translation mode: single-modal (ResNet G + PatchGAN), multimodal (MUNIT-style "
                                   "content/style G with AdaIN + multi-scale D), single-image (StyleGAN2-style G/D on "
                                   "patches of one image pair), exemplar (MCL-Net: paired conditions -> photos in the "
                                   "style of an exemplar; options in the exemplar section)", choices=MODES)
    presets: list[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    structure: StructureConfig = field(default_factory=StructureConfig)
    nce: NCEConfig = field(default_factory=NCEConfig)
    cycle: CycleConfig = field(default_factory=CycleConfig)
    single_image: SingleImageConfig = field(default_factory=SingleImageConfig)
    exemplar: ExemplarConfig = field(default_factory=ExemplarConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    #: facts recorded when the run was built, not options: ``{"backbone": {...}}`` (name, weights,
    #: file, SHA-256 of the structure loss's feature network; see ``sesim.nets.backbones``)
    resolved: dict[str, Any] = field(default_factory=dict)

    # -- derived values ------------------------------------------------------------------
    @property
    def load_size(self) -> int:
        d = self.data
        return d.load_size if d.load_size is not None else round(d.size * 286 / 256)

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        cfg = cls(presets=list(d.get("presets", [])), resolved=dict(d.get("resolved", {})))
        cfg.update_top(**{key: d[key] for key in TOP_LEVEL if key in d})
        for section in (*SECTIONS, *LEGACY_SECTIONS):
            values = d.get(section, {})
            if "vgg_weights" in values and "backbone" not in values:
                values = _migrate_vgg_weights(values)
            cfg.update_routed(section, values)
        return cfg

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a ``config.json``.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not valid JSON or holds an unknown/invalid option; the
                message names the file and what to do.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            where = f" (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
            raise ValueError(f"{path} is damaged: not valid JSON{where}; restore it from a copy of the run "
                             "or start a new run") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} is damaged: it holds a JSON {type(data).__name__}, not a configuration")
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def update(self, section: str, values: dict[str, Any]) -> None:
        """Set options of one section, converting and validating values; unknown keys are errors.
        A legacy section name (``model``, ``loss``) routes each option to the section that has it."""
        if section in LEGACY_SECTIONS:
            self.update_routed(section, values)
            return
        if section not in SECTIONS:
            raise ValueError(f"unknown section [{section}]; known: {', '.join(SECTIONS)}")
        obj = getattr(self, section)
        known = {f.name: f for f in dataclasses.fields(obj)}
        for key, value in values.items():
            key = ALIASES.get(key, key)
            if key not in known:
                where = f" (it belongs to [{FIELD_SECTION[key]}])" if key in FIELD_SECTION else ""
                raise ValueError(f"unknown {section} option {key!r}{where}; known: {', '.join(known)}")
            setattr(obj, key, convert(value, known[key]))

    def update_routed(self, section: str, values: dict[str, Any]) -> None:
        """Like :meth:`update`, but an option found under another section (a file or preset written
        before the sections were split: ``zoom_min`` under ``data``, anything under ``model`` / ``loss``)
        goes to the section that has it (every option name is unique); unknown options are still errors."""
        for key, value in values.items():
            name = ALIASES.get(key, key)
            if name not in TOP_LEVEL and name not in FIELD_SECTION:
                raise ValueError(f"unknown {section} option {key!r}")
            self.set_flat(key, value)

    def update_top(self, **values: Any) -> None:
        """Set ``method`` and/or ``mode``, checked like any option."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in values.items():
            if key not in TOP_LEVEL:
                raise ValueError(f"unknown option {key!r}")
            setattr(self, key, convert(value, fields[key]))

    def set_flat(self, key: str, value: Any) -> None:
        """Set an option by its flat (flag) name, e.g. ``set_flat("patch_size", 16)``."""
        key = ALIASES.get(key, key)
        if key in TOP_LEVEL:
            self.update_top(**{key: value})
        elif key not in FIELD_SECTION:
            raise ValueError(f"unknown option {key!r}")
        else:
            self.update(FIELD_SECTION[key], {key: value})

    def get_flat(self, key: str) -> Any:
        """An option's value by its flat (flag) name."""
        key = ALIASES.get(key, key)
        if key in TOP_LEVEL:
            return getattr(self, key)
        return getattr(getattr(self, FIELD_SECTION[key]), key)

    def apply_preset(self, name_or_path: str) -> None:
        """Apply a TOML preset: a name from ``sesim/presets`` or a path to a ``.toml`` file."""
        text = load_preset_text(name_or_path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"preset {name_or_path} is not valid TOML ({err}); fix the file") from None
        for section, values in data.items():
            try:
                if section in TOP_LEVEL:
                    self.update_top(**{section: values})
                elif (section in SECTIONS or section in LEGACY_SECTIONS) and isinstance(values, dict):
                    self.update_routed(section, values)
                elif section != "description":
                    raise ValueError(f"unknown section [{section}]")
            except ValueError as err:
                raise ValueError(f"preset {name_or_path}: {err}") from None
        self.presets.append(name_or_path)


#: the sections of a :class:`TrainConfig`, in order: name -> dataclass (``"data": DataConfig``, ...)
SECTIONS: dict[str, type] = {name: hint for name, hint in typing.get_type_hints(TrainConfig).items()
                             if dataclasses.is_dataclass(hint)}
FIELD_SECTION: dict[str, str] = {f.name: s for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
assert len(FIELD_SECTION) == sum(len(dataclasses.fields(c)) for c in SECTIONS.values()), "field names must be unique"


def option_fields() -> list[tuple[str, dataclasses.Field]]:
    """Every option as ``(group, field)``: ``method`` and ``mode`` (group ``recipe``), then each
    section's fields; one command-line flag each."""
    top = [("recipe", f) for f in dataclasses.fields(TrainConfig) if f.name in TOP_LEVEL]
    return top + [(name, f) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


#: options a resumed run may change (``sesim train --resume RUN --steps N``): the fields marked ``resume``
RESUME_OPTIONS: tuple[str, ...] = tuple(f.name for _, f in option_fields() if f.metadata.get("resume"))
#: other names of a field (older names, kept working in presets, configs and flags): alias -> field
ALIASES: dict[str, str] = {a: f.name for _, f in option_fields() for a in f.metadata.get("aliases", ())}


def _migrate_vgg_weights(loss: dict[str, Any]) -> dict[str, Any]:
    """A ``config.json`` written before backbones had names (sesim <= 0.1.0 main of 2026-11) meant
    VGG16 with ``vgg_weights``; its ``"auto"`` fell back to random init when no file was found, and
    the run was trained that way, so it is rebuilt that way."""
    from .nets.vgg import find_imagenet_weights

    loss = dict(loss)
    weights = loss.pop("vgg_weights")
    if weights in (None, "auto"):
        weights = "imagenet" if find_imagenet_weights() is not None else "random"
    return {**loss, "backbone": "vgg16", "backbone_weights": weights}


class OptionError(ValueError):
    """A bad option value; ``reason`` says why without naming the option (for flag errors)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"option {name} {reason}")
        self.reason = reason


def convert(value: Any, f: dataclasses.Field) -> Any:
    """Convert a value from TOML/JSON/the command line to the field's type and check its choices / range."""
    hint = typing.get_type_hints(_owner(f))[f.name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if not optional:
            raise OptionError(f.name, "cannot be empty")
        return None
    if typing.get_origin(base) is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        value = tuple(str(v).strip() for v in items if str(v).strip())
    elif base is bool:
        if isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise OptionError(f.name, f"expects true/false, got {value!r}")
            value = value.lower() in ("1", "true", "yes")
        value = bool(value)
    elif base in (int, float, str):
        if base is int and isinstance(value, float) and not value.is_integer():
            raise OptionError(f.name, f"expects int, got {value!r}")
        try:
            value = base(value)
        except (TypeError, ValueError):
            raise OptionError(f.name, f"expects {base.__name__}, got {value!r}") from None
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise OptionError(f.name, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    allowed = f.metadata.get("range")
    reason = allowed.problem(value) if allowed is not None else None
    if reason is not None:
        raise OptionError(f.name, reason)
    return value


def _owner(f: dataclasses.Field) -> type:
    return TrainConfig if f.name in TOP_LEVEL else SECTIONS[FIELD_SECTION[f.name]]


def available_presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("sesim.presets").iterdir() if p.name.endswith(".toml"))


def load_preset_text(name_or_path: str) -> str:
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        try:
            return path.read_text()
        except UnicodeDecodeError:
            raise ValueError(f"preset {path} is not a text file; fix the file") from None
    res = resources.files("sesim.presets") / f"{name_or_path}.toml"
    if not res.is_file():
        raise ValueError(f"unknown preset {name_or_path!r}; available: {', '.join(available_presets())} "
                         "(or a path to a .toml file)")
    return res.read_text()
