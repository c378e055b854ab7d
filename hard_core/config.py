"""The one validated run configuration, shared by the CLI, the run directory and the dashboard.

>>> cfg = RunConfig(dataset="mnist5k", canvas=40, teacher="T", steps=400)
>>> cfg.model_dump()["student"]
'mlp'
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError, quote


# Each HARD family's default lambda. Affine and colour keep what the image shows, so the teacher must read
# x_aug as it reads x (lambda 1). Mixing and latent edits change what it shows by design, and the teacher's
# outputs on x_aug are the student's targets anyway: a looser term lets them help more on scarce data
# (the lambda sweeps are in docs/results.md).
FAMILY_LAMBDA = {"affine": 1.0, "colour": 1.0, "mix": 0.0, "vae": 0.3}
LOGGERS = ("tensorboard", "wandb")  # where `--log` also sends a run's events (hard_core.runs.loggers)


def opt(default, help: str, **bounds):
    """A config field with its default, its bounds, and the help text the CLI shows."""
    return Field(default, description=help, **bounds)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # NaN/inf: refused

    kind: Literal["train", "pretrain"] = opt("train", "pretrain = train a teacher with cross-entropy, no teacher")
    # world: the nuisance the teacher learned and the student's data lacks (hard_core.worlds)
    world: str = opt("shift", "shift | rotation | polarity | thickness | scarce: picks the teacher that "
                   "--teacher default loads, the world's OOD suite, and its oracle --augment NAME")
    # data
    dataset: str = opt("mnist5k", "mnist5k | mnist1d (built in); mnist | fashion-mnist | cifar10 | cifar100 | "
                     "svhn (torchvision, --data-root); folder (an image folder at --data-root)")
    canvas: int | None = opt(None, "centre each image on a black canvas of this size (mnist5k: 28 or 40)", ge=8, le=256)
    data_root: str = opt("data", "folder of torchvision datasets, or the image folder for --dataset folder")
    image_size: int | None = opt(None, "resize images of --dataset folder to this size (default 32)", ge=8, le=1024)
    stream: Literal["auto", "on", "off"] = opt(
        "auto", "read training images from disk through a DataLoader (on) or hold them in memory (off); auto "
        "streams image folders and torchvision sets larger than 2 GiB as uint8 tensors")
    workers: int = opt(4, "DataLoader worker processes per rank when streaming", ge=0, le=64)
    suites: str | None = opt(None, "OOD test suites, e.g. 'shift:6,rotation:30'; 'none' for none "
                           "(default: every suite at the dataset's default strength, and the world's suite)")
    train_per_class: int | None = opt(None, "train on the first N training images of each class only "
                                    "(scarce data; the scarce world sets 50)", ge=1)
    # models
    teacher: str | None = opt(None, "a pretrain run directory, a .safetensors file, or 'default' (shipped)")
    student: str = opt("mlp", "model to train: mlp | small-cnn | cnn | resnet18-cifar | resnet18 | ...")
    # objective
    loss: Literal["kd", "ce"] = opt("kd", "kd = distil from the teacher; ce = labels only (baseline)")
    temperature: float = opt(4.0, "KD temperature T (a knob: changeable while running)", gt=0, le=100)
    alpha: float = opt(1.0, "weight of the KD term against cross-entropy; 1 = pure distillation (knob)",
                     ge=0, le=1)
    # augmentation
    augment: str = opt("none", "none | shift | rotation | polarity | thickness | flip-crop | randaugment | "
                     "autoaugment | cutout | mixup | cutmix | cutmixpick")
    views: Literal["augmented", "original+augmented"] = opt(
        "augmented", "what the student learns from: the augmented batch, or (paper 2) the originals plus "
        "their augmented views, each with the teacher's output on it as the target")
    max_shift: int | None = opt(None, "pixels for --augment shift (default: the shift suite's strength)", ge=0)
    pick_criterion: Literal["kl", "teacher-entropy", "student-entropy"] = opt(
        "kl", "CutMixPick score: KL(teacher||student) at T, or teacher / student entropy")
    pick_rounds: int = opt(2, "CutMixPick candidate rounds; the best batch-size of them are kept", ge=1)
    # HARD: a learned augmentor that makes teacher and student disagree (combines with --augment)
    hard: Literal["none", "affine", "colour", "mix", "vae"] = opt(
        "none", "learned hard augmentor: affine (spatial transformer) | colour (intensity maps, up to "
        "inversion) | mix (a learned CutMix) | vae (latent edits)")
    hard_schedule: Literal["alternate", "reverse"] = opt(
        "alternate", "reverse: one pass, the augmentor behind a gradient reversal; alternate (the paper's): an "
        "augmentor update, then a student update on what it drew")
    hard_spread: float | None = opt(None, "starting width of the augmentor's exploration noise (default: the "
                                  "family's own; 0 starts at the identity)", ge=0, le=4)
    hard_candidates: int | None = opt(None, "augmentations drawn per image, of which the hardest is kept (default: "
                                      "the family's own: 4 for colour, 1 for the others)", ge=1, le=16)
    hard_lambda: float | None = opt(None, "lambda: how strongly the teacher must still see the same thing on an "
                                  "augmented image, KL(T(x)||T(x_aug)) (knob; default: the family's own: 1 for "
                                  "affine and colour, 0.3 for vae, 0 for mix)", ge=0)
    hard_lr: float = opt(1e-2, "augmentor learning rate (its own Adam)", gt=0, le=10)
    hard_every: int = opt(4, "update the augmentor on every k-th student step (amortises its cost; between updates it only "
                    "augments)", ge=1)
    hard_share: float | None = opt(None, "share of the student's batch that the augmentor augments (default: the "
                                 "family's own: 0.75 for affine, 0.4 for colour, 1 for mix, 0.5 for vae)", gt=0, le=1)
    affine: str = opt("translate", "HARD-affine degrees of freedom and bounds, e.g. 'translate' (15% of the "
                    "side), 'rotate' (90 degrees), 'translate:6,rotate:30,scale:0.2,shear:0.2', or 'all'")
    hard_image_input: bool = opt(False, "condition the affine augmentor on the image as well as on noise")
    vae: str = opt("default", "HARD-vae's AutoencoderKL: 'default' (shipped, built-in digits), a local "
                 "diffusers folder, or a hub id (online)")
    # optimisation
    steps: int = opt(600, "training steps", gt=0, le=10_000_000)
    batch_size: int = opt(128, "images per step", gt=0, le=65536)
    lr: float = opt(2e-3, "AdamW learning rate (knob)", gt=0, le=10)
    weight_decay: float = opt(0.0, "AdamW weight decay", ge=0)
    schedule: Literal["cosine", "constant"] = opt("cosine", "learning-rate schedule; cosine decays to 0")
    # bookkeeping
    eval_every: int = opt(100, "steps between evaluations on test + OOD suites", gt=0)
    log_every: int = opt(10, "steps between loss/throughput events", gt=0)
    snapshot_every: int = opt(50, "steps between image snapshots", gt=0)
    checkpoint_every: int = opt(200, "steps between resumable checkpoints", gt=0)
    probe_every: int = opt(100, "steps between disagreement / invariance-map snapshots (with a teacher)", gt=0)
    sync_bn: bool = opt(False, "under torchrun on GPUs: BatchNorm statistics over the global batch "
                        "(SyncBatchNorm) instead of each rank's shard")
    seed: int = opt(0, "random seed: same seed, same run on the same device")
    device: str = opt("auto", "auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = opt(
        "auto", "autocast of the teacher's and the student's passes: auto (bf16 on GPUs that support it, fp16 "
        "with a GradScaler on GPUs that do not, fp32 on the CPU) | bf16 | fp16 | fp32")
    compile: bool = opt(False, "torch.compile the teacher and the student (a slower start for faster steps)")
    log: str = opt("none", "also log the run to: none | tensorboard | wandb | tensorboard,wandb (TensorBoard "
                   "files in <out>/tensorboard, W&B offline with WANDB_MODE=offline)")
    threads: int | None = opt(None, "torch CPU threads (default: torch's choice)", ge=1)

    @field_validator("log")
    @classmethod
    def _log_targets(cls, value: str) -> str:
        """A comma-separated subset of LOGGERS, normalised ("none" when empty)."""
        names = [n.strip().lower() for n in value.split(",") if n.strip() and n.strip().lower() != "none"]
        unknown = [n for n in names if n not in LOGGERS]
        if unknown:
            raise ValueError(f"unknown logger {unknown[0]!r}; choose none or any of {', '.join(LOGGERS)}")
        return ",".join(dict.fromkeys(names)) or "none"

    @model_validator(mode="before")
    @classmethod
    def _family_lambda(cls, data):
        """An unset lambda becomes the family's own (`FAMILY_LAMBDA`), so a run's config records the value
        it trains with."""
        if isinstance(data, dict) and data.get("hard_lambda") is None:
            data = {**data, "hard_lambda": FAMILY_LAMBDA.get(data.get("hard", "none"), 1.0)}
        return data

    @classmethod
    def from_sources(cls, file: str | Path | None = None, **overrides) -> "RunConfig":
        """Config file (YAML or JSON) first, then explicit overrides (flags that were given)."""
        data = load_config_file(file) if file else {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return validate(cls, data)


# what a plain-KD twin takes from RunConfig's defaults instead of the run's own values: no augmentation
PLAIN = ("augment", "views", "max_shift", "pick_criterion", "pick_rounds", "hard", "hard_schedule", "hard_spread",
         "hard_candidates", "hard_lambda", "hard_lr", "hard_every", "hard_share", "affine", "hard_image_input", "vae")
UNLEARNED = ("device", "threads", "log", "compile")  # where and how a run trains and logs, not what it learns


TWINS = {"plain": "plain KD: the same run without augmentation",
         "loss": "the other loss: KD <-> CE, with the same augmentation, steps, seed and data (paper 2's Fig. 1)"}
# augmentations that score their candidates with the teacher (`needs_models` in hard_core/augment): a run
# without a teacher (CE) cannot use them, so a run with one has no CE twin (tests/test_thrives.py keeps it true)
TEACHER_AUGMENTS = ("cutmixpick",)


def twin_config(cfg: RunConfig, of: str = "plain") -> RunConfig | None:
    """The run to compare `cfg` with, its twin (`TWINS`). of="plain" (its "KD twin"): plain KD with the same
    world, data, teacher, student, seed, steps, evaluation cadence and optimisation, without augmentation; None
    when `cfg` is itself plain KD or has no teacher (pretrain, cross-entropy). of="loss": the same run trained
    with the other loss, KD for CE and CE for KD, all else equal (a CE run keeps its teacher reference, which
    it does not train with); None for pretraining, without a teacher, and for runs whose data the teacher
    shapes (HARD, `TEACHER_AUGMENTS`)."""
    if of not in TWINS:
        raise ValueError(f"no twin {of!r}: one of {', '.join(TWINS)}")
    if cfg.kind != "train" or not cfg.teacher:
        return None
    if of == "loss":
        if cfg.hard != "none" or cfg.augment in TEACHER_AUGMENTS:
            return None
        return RunConfig(**{**cfg.model_dump(), "loss": "ce" if cfg.loss == "kd" else "kd"})
    if cfg.loss != "kd":
        return None
    twin = RunConfig(**{**cfg.model_dump(), **{name: RunConfig.model_fields[name].default for name in PLAIN}})
    return None if same_run(twin, cfg) else twin


def same_run(a: "RunConfig | dict", b: "RunConfig | dict") -> bool:
    """Whether two configs (RunConfigs or their JSON dicts) train the same run: equal but for the fields in
    UNLEARNED, and for the HARD options of runs without an augmentor, which never read them (so a new
    augmentor default keeps plain-KD runs and matrix cells)."""
    def key(c) -> dict:
        d = c.model_dump(mode="json") if isinstance(c, RunConfig) else dict(c)
        drop = set(UNLEARNED) | ({k for k in d if k.startswith("hard_")} if d.get("hard") in (None, "none") else set())
        return {k: v for k, v in d.items() if k not in drop}

    return key(a) == key(b)


KNOBS = ("lr", "temperature", "alpha", "hard_lambda")  # the fields a run takes new values of while it trains


def _knob_rules(name: str) -> list[tuple[str, float]]:
    """RunConfig's bounds on knob `name` (its Gt/Ge/Lt/Le field metadata) as (sign, limit) pairs."""
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return [(sign, getattr(rule, key)) for rule in RunConfig.model_fields[name].metadata
            for key, sign in signs.items() if getattr(rule, key, None) is not None]


KNOB_RULES = {name: _knob_rules(name) for name in KNOBS}  # e.g. "lr": [(">", 0), ("<=", 10)]
_TESTS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


def knob_rule(name: str) -> str:
    """What a valid value of knob `name` is, in words: "a number > 0 and <= 10"."""
    return " ".join(["a finite number", " and ".join(f"{sign} {limit:g}" for sign, limit in KNOB_RULES[name])]).strip()


def check_knobs(request) -> tuple[dict, list[str]]:
    """The one knob validator (single process and torchrun alike): the valid knob values of a control
    request (finite numbers within RunConfig's own bounds, as floats), and one short reason per knob it
    refuses, e.g. "lr='fast' (must be a finite number > 0 and <= 10)". Keys that are not knobs pass by."""
    if not isinstance(request, dict):
        return {}, [f"the request is not an object of knob values (got {type(request).__name__})"]
    good, refused = {}, []
    for name in KNOBS:
        if name not in request:
            continue
        value = request[name]
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = None
        if number is not None and math.isfinite(number) and \
                all(_TESTS[sign](number, float(limit)) for sign, limit in KNOB_RULES[name]):
            good[name] = number
        else:
            refused.append(f"{name}={quote(value, 40)} "
                           f"(must be {knob_rule(name)})")
    return good, refused


def validate(model, data: dict):
    """Build a pydantic model, turning its errors into one readable UserError line."""
    try:
        return model(**data)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            name = ".".join(str(p) for p in err["loc"]) or "config"
            flag = "--" + name.replace("_", "-")
            if err["type"] == "extra_forbidden":
                parts.append(f"unknown option {quote(name)}")
                continue
            parts.append(f"{flag}: {err['msg']}" + (f" (got {quote(err['input'])})" if "input" in err else ""))
        more = f"; and {len(parts) - 3} more" if len(parts) > 3 else ""
        raise UserError("invalid config: " + "; ".join(parts[:3]) + more) from None


MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; a larger file is a mistake (or an attack)


def load_config_file(path: str | Path) -> dict:
    """A --config file (YAML or JSON) as {option: value}; every way it can be wrong is one UserError line:
    missing, over MAX_CONFIG_BYTES, not UTF-8, unparsable, YAML anchors or aliases (a 452-byte file of nested
    aliases expands to gigabytes), not a mapping, keys that are not option names."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {quote(str(path))}")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UserError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 10} KB: not a config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not UTF-8 text (byte {e.start})") from None
    try:
        data = _parse_yaml(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        mark = getattr(e, "problem_mark", None)  # YAML: where the parser gave up
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot parse config file {path}{where}: {quote(reason, bare=True)}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option names to values")
    bad = [k for k in data if not isinstance(k, str)]  # YAML keys may be ints, floats, null
    if bad:
        bad = bad[0]
        raise UserError(f"config file {path}: {quote(bad)} is not an option name (keys are names like steps, lr)")
    return {k.replace("-", "_"): v for k, v in data.items()}


def _parse_yaml(text: str):
    """yaml.safe_load without anchors and aliases: no config needs them, and nested aliases are a memory bomb."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None) is not None:
                event = self.peek_event()
                raise yaml.MarkedYAMLError(problem="anchors and aliases (&name, *name) are not allowed in a config",
                                           problem_mark=event.start_mark)
            return super().compose_node(parent, index)

    loader = NoAliases(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
