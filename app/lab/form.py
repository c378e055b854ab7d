"""The run form's choices and its link with run configs, Streamlit-free: the lab's defaults and limits, the
form's widget values that show a config (`form_values`), where the form's run would differ from a config
(`differences`) and what it keeps from one unseen (`unseen`). `widgets.py` draws the form with them.
"""
from __future__ import annotations

from hard_core.augment import AUGMENTATIONS
from hard_core.config import FAMILY_LAMBDA, UNLEARNED, RunConfig
from hard_core.worlds import WORLDS

from . import teachers
from .explore import DATASETS, dataset  # label -> (dataset, canvas): the same choices on every page

STUDENTS = ["mlp", "small-cnn", "cnn"]
HARD = {"affine": "HARD-affine: learned shifts, rotations, zooms, shears",
        "colour": "HARD-colour: learned intensity maps, up to inversion",
        "mix": "HARD-mix: a learned CutMix of image pairs", "vae": "HARD-vae: learned edits in a VAE's latent",
        "none": "none: plain KD"}
DOFS = ["translate", "rotate", "scale", "shear"]
PRESETS = {  # the Learn page's "try it" links: form values (widget keys) to set before the form draws
    "kd": {"f_hard": "none", "f_augment": "none"},
    "kd-shift": {"f_hard": "none", "f_augment": "shift"},
    "cutmixpick": {"f_hard": "none", "f_augment": "cutmixpick"},
    # f_lambda None: the family's own lambda (hard_core.config.FAMILY_LAMBDA), which its result was measured with
    "hard-affine": {"f_world": "shift", "f_hard": "affine", "f_augment": "none", "f_dofs": ["translate"],
                    "f_lambda": None},
    "hard-colour": {"f_world": "polarity", "f_hard": "colour", "f_augment": "none", "f_lambda": None},
    "hard-mix": {"f_world": "scarce", "f_hard": "mix", "f_augment": "none", "f_lambda": None},
    "hard-vae": {"f_world": "scarce", "f_hard": "vae", "f_augment": "none", "f_lambda": None},
}
# the lab's upper bounds (longer or wilder runs belong to the CLI): 20,000 steps is ~30 min on 2 CPU cores;
# AdamW above lr 0.1 wrecks the MLP student (lr 1: loss 262 and 10% accuracy after 40 steps)
LAB_LIMITS = {"steps": 20_000, "lr": 0.1}
LAB_DEFAULTS = dict(dataset="mnist5k", canvas=40, teacher="default", student="mlp", hard="affine", steps=600,
                    eval_every=50, snapshot_every=25, probe_every=50, log_every=10)


# RunConfig field -> the run form's widget key, for the fields the form sets one to one
FORM = {"world": "f_world", "student": "f_student", "augment": "f_augment", "hard": "f_hard", "steps": "f_steps",
        "hard_lambda": "f_lambda", "temperature": "f_T", "lr": "f_lr", "batch_size": "f_batch", "seed": "f_seed",
        "device": "f_device"}
URL_FIELDS = ("dataset", "canvas", "teacher", "affine", *FORM)  # a new run's settings in the address


def form_values(cfg: dict) -> dict:
    """The run form's widget values that show config `cfg` (a run's config.json "config" or a RunConfig dump).
    Settings the form has no widget or choice for are left as they are: `run_form`'s result then differs
    from `cfg`, and the page says where (`differences`)."""
    values = {}
    label = next((name for name, dc in DATASETS.items() if dc == (cfg.get("dataset"), cfg.get("canvas"))), None)
    if label:
        values["f_dataset"] = label
    choices = {"world": WORLDS, "student": STUDENTS, "augment": AUGMENTATIONS, "hard": HARD,
               "device": ["auto", "cpu", "cuda", "mps"]}
    for name, key in FORM.items():
        value = cfg.get(name)
        if name in choices and value not in choices[name]:
            continue
        if name in ("steps", "batch_size", "seed") and isinstance(value, int) and not isinstance(value, bool):
            values[key] = value
        elif name in ("temperature", "lr") and isinstance(value, (int, float)):
            values[key] = float(value)
        elif name in choices:
            values[key] = value
    lam = cfg.get("hard_lambda")
    if isinstance(lam, (int, float)) and lam != FAMILY_LAMBDA.get(cfg.get("hard")):
        values["f_lambda"] = float(lam)
    elif cfg.get("hard") in FAMILY_LAMBDA or lam is None:
        values["f_lambda"] = None  # the family's own
    dofs = [part.split(":")[0] for part in str(cfg.get("affine") or "translate").split(",")]
    values["f_dofs"] = DOFS if dofs == ["all"] else [d for d in dofs if d in DOFS]
    teacher = cfg.get("teacher")
    if isinstance(teacher, str) and teacher and cfg.get("world") in WORLDS:
        offered = teachers.choices(cfg.get("dataset"), cfg.get("canvas"), cfg["world"])
        values["f_teacher"] = teacher if teacher in offered else teachers.OWN
        if teacher not in offered:
            values["f_teacher_path"] = teacher
    return values


def differences(form: RunConfig, cfg: dict) -> list[str]:
    """The settings in which the form's run would differ from config `cfg`, as 'name value' (the form's), for
    the fields that change what a run learns."""
    mine = form.model_dump(mode="json")
    return [f"{k} {mine[k]}" for k in mine if k not in UNLEARNED and k in cfg and mine[k] != cfg[k]]


def unseen(form: RunConfig) -> list[str]:
    """The form's settings that no widget shows (kept from the run on screen) and that differ from the lab's
    defaults, as 'name value'."""
    mine, lab = form.model_dump(mode="json"), RunConfig(**LAB_DEFAULTS).model_dump(mode="json")
    shown = {*FORM, "dataset", "canvas", "teacher", "affine", *UNLEARNED}
    return [f"{k} {mine[k]}" for k in mine if k not in shown and mine[k] != lab.get(k)]


def lab_limits(cfg: RunConfig, label: str) -> dict[str, str]:
    """What the lab refuses in a valid config, field -> one line: more steps or a larger learning rate than
    LAB_LIMITS, or a batch larger than the student's training set (the world's, e.g. 500 digits in scarce)."""
    problems = {}
    if cfg.steps > LAB_LIMITS["steps"]:
        problems["steps"] = f"at most {LAB_LIMITS['steps']:,} steps in the lab (longer runs: the command line)"
    if cfg.lr > LAB_LIMITS["lr"]:
        problems["lr"] = f"at most {LAB_LIMITS['lr']:g}: larger learning rates make the student diverge"
    per_class = cfg.train_per_class or WORLDS[cfg.world].train_per_class
    ds = dataset(label)
    train = len(ds.train) if per_class is None else min(len(ds.train), per_class * ds.num_classes)
    if cfg.batch_size > train:
        problems["batch_size"] = f"at most {train:,}: the student's training set has {train:,} images"
    return problems
