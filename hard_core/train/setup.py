"""Everything the loop needs, built from a `RunConfig`: device, data, suites, teacher, student,
augmentation and optimizer. Kept apart from the loop so the loop reads on one screen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..augment import Augment, build_augment
from ..augment.hard import HardAugmentor, build_augmentor
from ..config import RunConfig
from ..data import Dataset, Split, default_suites, load_dataset, make_suites, parse_suites
from ..data.stream import FileSplit, sample, should_stream, step_batches
from ..data.suites import check_suites
from ..errors import UserError
from ..models import build_model
from ..teacher import frozen, load_teacher
from ..worlds import World, get_world
from .distributed import Dist, env_world
from .targets import TeacherTargets


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here (try --device cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available here (try --device cpu)")
    return device


SUITE_IMAGES = 10_000  # a streamed test set's OOD suites are built from this many evenly spaced images
PROBE_IMAGES = 256  # ... and the live probes draw from this many


@lru_cache(maxsize=4)
def _dataset(name, canvas, root, image_size, stream) -> Dataset:
    return load_dataset(name, canvas=canvas, root=root, image_size=image_size, stream=stream)


def dataset_for(cfg: RunConfig) -> Dataset:
    """The run's dataset (cached per process: the dashboard and tests build many runs)."""
    return _dataset(cfg.dataset, cfg.canvas, cfg.data_root, cfg.image_size, cfg.stream)


def held(dataset: Dataset, images: int) -> Dataset:
    """`dataset` with a streamed test split replaced by `images` of its images, in memory."""
    if not isinstance(dataset.test, FileSplit):
        return dataset
    return replace(dataset, test=sample(dataset.test, images))


def suite_spec(cfg: RunConfig, dataset: Dataset) -> dict[str, float]:
    """The run's OOD suites and strengths, checked against the data (a UserError if one does not fit).
    By default every suite, with the world's own at the world's strength."""
    if cfg.suites is not None:
        spec = parse_suites(cfg.suites)
    else:
        world = get_world(cfg.world)
        spec = default_suites(dataset)
        if world.strength is not None:
            spec[world.suite] = world.strength
    check_suites(dataset, spec)
    return spec


def suites_for(cfg: RunConfig, dataset: Dataset) -> dict[str, Split]:
    """"test" (in-domain) first, then the OOD suites, all deterministic for the run's seed-free spec."""
    return {"test": dataset.test, **make_suites(held(dataset, SUITE_IMAGES), suite_spec(cfg, dataset), seed=0)}


@dataclass
class Session:
    cfg: RunConfig
    device: torch.device
    dataset: Dataset
    train: Split | FileSplit  # on the device, or read batch by batch (`streamed`)
    teacher: nn.Module | None
    student: nn.Module
    augment: Augment
    optimizer: torch.optim.Optimizer
    augmentor: HardAugmentor | None = None  # HARD's learned augmentor, with its own optimizer
    augmentor_optimizer: torch.optim.Optimizer | None = None
    dist: Dist = field(default_factory=Dist)  # torchrun's ranks (a world of one without it)
    # the passes that train the student / the augmentor go through these: DDP wrappers under torchrun
    # (their gradients are averaged over the ranks), else the modules themselves
    student_ddp: nn.Module | None = None
    augmentor_ddp: nn.Module | None = None
    streamed: bool = False  # batches come through a DataLoader (from disk, or from host memory)
    precision: str = "fp32"  # resolved from --precision: bf16 | fp16 | fp32 (`resolve_precision`)
    teacher_step: nn.Module | None = None  # the teacher as the step runs it (compiled with --compile)
    targets: TeacherTargets | None = None  # its kept outputs on the clean training images (`targets.py`)
    _suites: dict[str, Split] | None = None

    def __post_init__(self):
        self.student_ddp = self.student if self.student_ddp is None else self.student_ddp
        self.augmentor_ddp = self.augmentor if self.augmentor_ddp is None else self.augmentor_ddp
        self.teacher_step = self.teacher if self.teacher_step is None else self.teacher_step
        # fp16 needs its gradients scaled; the augmentor's own update gets a scaler of its own
        fp16 = self.precision == "fp16"
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.augmentor_scaler = torch.amp.GradScaler(self.device.type) if fp16 and self.augmentor is not None else None
        self.targets = TeacherTargets.maybe(self)

    @property
    def suites(self) -> dict[str, Split]:
        """Test + OOD suites on the device, built at the first evaluation (not before the first step:
        a live session shows its first images sooner)."""
        if self._suites is None:
            self._suites = {k: v.to(self.device) for k, v in suites_for(self.cfg, self.dataset).items()}
        return self._suites

    @property
    def autocast(self):
        """Autocast at the run's precision (bf16 or fp16); a no-op context for fp32."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def batches(self, start: int):
        """This rank's part of the global batch of every step after `start`, on the device."""
        return step_batches(self.train, self.cfg.batch_size, self.cfg.seed, start, self.cfg.steps, self.device,
                            self.dist.rank, self.dist.world, stream=self.streamed, workers=self.cfg.workers)

    def lr_at(self, base_lr: float, step: int) -> float:
        if self.cfg.schedule == "constant":
            return base_lr
        return base_lr * 0.5 * (1 + math.cos(math.pi * step / self.cfg.steps))


def resolve_precision(requested: str, device: torch.device) -> str:
    """`auto`: bf16 on GPUs that support it, fp16 (with a GradScaler) on GPUs that do not (T4, V100), fp32 on
    the CPU and MPS. An explicit bf16 on a GPU without it is one line, not torch's traceback."""
    bf16_gpu = device.type == "cuda" and _native_bf16(device)
    if requested == "auto":
        return ("bf16" if bf16_gpu else "fp16") if device.type == "cuda" else "fp32"
    if requested == "bf16" and device.type == "cuda" and not bf16_gpu:
        raise UserError(f"--precision bf16: {torch.cuda.get_device_name(device)} does not support bfloat16; use "
                        "--precision fp16 (or auto)")
    return requested


def _native_bf16(device: torch.device) -> bool:
    """Whether the GPU computes in bf16 itself (Ampere and newer), not by emulation."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.4 has no `including_emulation`
        return torch.cuda.get_device_capability(device)[0] >= 8


def compiled(module: nn.Module | None, on: bool) -> nn.Module | None:
    """`torch.compile(module)` with --compile; the module itself otherwise (and for None)."""
    return torch.compile(module) if on and module is not None else module


def train_split(cfg: RunConfig, dataset: Dataset) -> Split:
    """The student's training images: the data set's train split, or its first N per class (scarce data)."""
    per_class = cfg.train_per_class or get_world(cfg.world).train_per_class
    if per_class is None:
        return dataset.train
    y = dataset.train.y
    keep = torch.cat([(y == k).nonzero().flatten()[:per_class] for k in range(dataset.num_classes)]).sort().values
    if isinstance(dataset.train, FileSplit):
        return dataset.train.subset(keep)
    return Split(dataset.train.x[keep], y[keep])


@dataclass
class Given:
    """What a Python caller hands the engine in place of names (`hard_core.distil`): its own data set, teacher
    (frozen, eval mode) or student, each `None` to build it from the config."""

    dataset: Dataset | None = None
    teacher: nn.Module | None = None
    student: nn.Module | None = None


def build_session(cfg: RunConfig, given: Given | None = None) -> Session:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if cfg.sync_bn and env_world()[1] > 1 and device.type != "cuda":
        raise UserError("--sync-bn needs GPUs: torch's SyncBatchNorm does not run on the CPU")
    dist, device = Dist.from_env(device)
    dist.check_batch(cfg.batch_size)
    world = get_world(cfg.world)
    given = given or Given()
    dataset = given.dataset or dataset_for(cfg)
    if dataset.is_1d and world.name != "shift":
        raise UserError(f"--world {world.name} is a world of images; 1D signals have the shift world only")
    train = train_split(cfg, dataset)
    if cfg.batch_size > len(train):
        raise UserError(f"--batch-size {cfg.batch_size} is larger than the {len(train)} training images")
    suite_spec(cfg, dataset)  # bad --suites fail now, not at the first evaluation
    if cfg.kind == "pretrain" or cfg.loss == "ce":
        teacher = None
    elif cfg.teacher is None:
        raise UserError("--teacher is required for KD (a pretrain run directory, a .safetensors file, or 'default')")
    else:
        teacher = frozen(given.teacher.to(device)) if given.teacher is not None else load_teacher(cfg, dataset, device)
    torch.manual_seed(cfg.seed)  # student initialisation
    student = given.student if given.student is not None else \
        build_model(cfg.student, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                    mean=dataset.mean, std=dataset.std)
    student = student.to(device)
    if cfg.sync_bn and dist.enabled:  # converts the layers in place: checkpoints keep BatchNorm's keys
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
    max_shift = cfg.max_shift if cfg.max_shift is not None else default_suites(dataset).get("shift", 4)
    augment = build_augment(cfg.augment, num_classes=dataset.num_classes, max_shift=int(max_shift),
                            criterion=cfg.pick_criterion, rounds=cfg.pick_rounds, temperature=cfg.temperature)
    if augment.needs_models and teacher is None:
        raise UserError(f"--augment {cfg.augment} scores candidates with the teacher; give --teacher")
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    augmentor = augmentor_for(cfg, dataset.input_shape, device, world) if cfg.hard != "none" else None
    if augmentor is not None and teacher is None:
        raise UserError(f"--hard {cfg.hard} plays the teacher against the student: give --teacher (and --loss kd)")
    augmentor_optimizer = None
    if augmentor is not None:
        augmentor_optimizer = torch.optim.Adam([p for p in augmentor.parameters() if p.requires_grad], lr=cfg.hard_lr)
    streamed = isinstance(train, FileSplit) or should_stream(cfg.stream, len(train), dataset.input_shape)
    return Session(cfg, device, dataset, train if streamed else train.to(device), teacher, student, augment,
                   optimizer, augmentor, augmentor_optimizer, dist, compiled(dist.wrap(student), cfg.compile),
                   dist.wrap(augmentor), streamed, resolve_precision(cfg.precision, device),
                   compiled(teacher, cfg.compile))


def augmentor_for(cfg: RunConfig, input_shape, device, world: World) -> HardAugmentor:
    """The run's HARD augmentor, initialised from the run's seed; `--vae default` is the world's VAE."""
    vae = world.vae if cfg.vae == "default" and world.vae else cfg.vae
    options = {"affine": {"dof": cfg.affine, "image_input": cfg.hard_image_input},
               "vae": {"vae": vae}}.get(cfg.hard, {})
    if cfg.hard_spread is not None:
        options["spread"] = cfg.hard_spread
    if cfg.hard_candidates is not None:
        options["candidates"] = cfg.hard_candidates
    if cfg.hard_share is not None:
        options["share"] = cfg.hard_share
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        return build_augmentor(cfg.hard, input_shape=input_shape, **options).to(device)
