"""Worlds: a nuisance the teacher learned and the student's training data lacks.

A world fixes four things: the shipped teacher that `--teacher default` loads (trained with the
nuisance), the OOD suite that tests it (on by default), the oracle (KD told the nuisance, which bounds
what transfer can reach), and what the student trains on (always the plain data set; `scarce` keeps 50
digits per class). Each HARD family can express some nuisances and not others, so the honest summary is
a matrix of worlds x methods with gap closed = (method - KD) / (oracle - KD) (`python -m hard_core matrix`).

>>> world = get_world("rotation")
>>> world.suite, world.oracle     # ('rotation', {'augment': 'rotation'})
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserError


@dataclass(frozen=True)
class World:
    name: str
    nuisance: str  # in words, for tables and the lab
    suite: str  # the OOD suite that measures the transfer ("test" when the world is about in-domain accuracy)
    strength: float | None  # the suite's strength in this world (None: the suite's default)
    oracle: dict = field(default_factory=dict)  # config overrides that make the KD oracle
    families: tuple[str, ...] = ()  # the HARD families that can express the nuisance
    teacher: str = ""  # suffix of the shipped teacher asset ("" = the data set's plain shipped teacher)
    teacher_augment: str = ""  # what that teacher was trained with (the `assets` command)
    train_per_class: int | None = None  # the student's training images per class (None: all)
    vae: str | None = None  # the shipped VAE that HARD-vae uses by default in this world (None: vae-mnist5k)
    hard: dict = field(default_factory=dict)  # family -> config overrides for its matrix cell in this world


# HARD-affine in the rotation world: rotations only, no consistency term, and the hardest of 4 draws per
# image. At the family's defaults (lambda 1, one draw) the augmentor narrows its spread to keep the teacher's
# reading, and once the student reads those rotations nothing is hard any more; these settings keep its
# samples hard, at about 3.5x the run time (hardness and accuracy of both: docs/results.md).
ROTATION_AFFINE = {"affine": "rotate", "hard_lambda": 0.0, "hard_candidates": 4}

WORLDS: dict[str, World] = {w.name: w for w in [
    World("shift", "digits moved by up to 6 px", "shift", None, {"augment": "shift"}, ("affine",),
          teacher_augment="shift"),
    World("rotation", "digits rotated by up to 45 degrees", "rotation", 45, {"augment": "rotation"}, ("affine",),
          teacher="rotation", teacher_augment="rotation", hard={"affine": ROTATION_AFFINE}),
    World("polarity", "white-on-black and black-on-white digits", "polarity", 1.0, {"augment": "polarity"},
          ("colour",), teacher="polarity", teacher_augment="polarity"),
    World("thickness", "strokes a pixel thinner or thicker", "thickness", 1, {"augment": "thickness"}, ("vae",),
          teacher="thickness", teacher_augment="thickness", vae="vae-mnist5k-thickness"),
    World("scarce", "only 50 training digits per class", "test", None, {"train_per_class": 400}, ("mix", "vae"),
          teacher_augment="shift", train_per_class=50),
]}


def get_world(name: str) -> World:
    if name not in WORLDS:
        raise UserError(f"unknown world '{name}'; choose from: {', '.join(WORLDS)}")
    return WORLDS[name]


METHODS = ("kd", "oracle", "hard-affine", "hard-colour", "hard-mix", "hard-vae")


def method_config(world: World, method: str) -> dict:
    """The config fields that run `method` in `world` (on top of the common data, teacher, student, steps
    and seed): plain KD, the oracle, or a HARD family at its own defaults plus the world's `hard` settings.

    >>> method_config(get_world("polarity"), "hard-colour")   # {'world': 'polarity', 'hard': 'colour'}
    """
    if method not in METHODS:
        raise UserError(f"unknown method '{method}'; choose from: {', '.join(METHODS)}")
    cfg = {"world": world.name}
    if method == "oracle":
        cfg.update(world.oracle)
    elif method.startswith("hard-"):
        cfg["hard"] = method.removeprefix("hard-")
        cfg.update(world.hard.get(cfg["hard"], {}))
    return cfg
