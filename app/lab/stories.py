"""What each example run does, in words, for the Live page's first screen and the Learn page: one text
per HARD family in its world (and for plain KD), so the words always match the loaded preset.

>>> intro("vae", "scarce")          # 'HARD-vae **edits the digits in the latent space** of a small VAE ...'
"""
from __future__ import annotations

from hard_core.worlds import WORLDS

from .augmentor import HARDNESS_FOUND

# family -> (its world, what it does there and what to watch)
HARD_STORIES = {
    "affine": ("shift", "HARD-affine learns to **shift** the digits to where the student fails. The teacher was "
               "trained on digits moved by up to 6 px; the student sees only centred ones. Watch the student's "
               "*shift* accuracy climb and its invariance map flatten like the teacher's."),
    "colour": ("polarity", "HARD-colour learns **intensity maps**, up to the full inversion x → 1 − x. The "
               "polarity world's teacher reads white-on-black and black-on-white digits; the student trains on "
               "white-on-black only. Watch the student's *polarity* accuracy (every test digit inverted) and the "
               "gallery's middle row turning black-on-white."),
    "mix": ("scarce", "HARD-mix learns where to **cut a box of a partner digit** into each image, and how large: "
            "a CutMix whose boxes the game places. In the scarce world the student has only 50 training digits per "
            "class; every mixed image is a new view that the teacher labels. Watch the student's *test* accuracy "
            "against plain KD on the same 500 digits."),
    "vae": ("scarce", "HARD-vae **edits the digits in the latent space** of a small VAE trained on all 4,000 training "
            "digits. In the scarce world the student has only 50 digits per class; each edit, up to a change of "
            "digit, is a new image that the teacher labels. Watch the student's *test* accuracy against plain KD on "
            "the same 500 digits, and the gallery's bottom row, where the edits are."),
}
KD_STORY = ("Plain **knowledge distillation**: the student matches the teacher's softened outputs on the plain "
            "training digits, with no augmentation that shows it the world's nuisance.")
ORACLE_STORY = ("KD with **{augment}** as a fixed augmentation: the oracle, told the nuisance the teacher learned. It "
                "bounds what a learned augmentor can transfer.")
AUGMENT_STORY = ("KD with **{augment}** as a fixed augmentation: every new view of a digit gets a fresh target from "
                 "the teacher (paper 2: KD thrives on data augmentation).")


def intro(hard: str | None, world: str | None, augment: str | None = "none") -> str:
    """What a run with this HARD family, world and standard augmentation does, and what to watch."""
    world = world if world in WORLDS else "shift"
    where = f"World **{world}**: {WORLDS[world].nuisance} for the teacher; the student trains on the plain digits."
    if hard in HARD_STORIES:
        home, text = HARD_STORIES[hard]
        w = WORLDS[world]
        if home != world and hard in w.families:  # e.g. affine with rotations in the rotation world
            text = (f"HARD-{hard} in the **{world}** world, whose nuisance it can express ({w.nuisance}): "
                    f"watch the student's *{w.suite}* accuracy against plain KD's and the teacher's.")
        elif home != world:
            text += f" (Here it runs in the {world} world, whose nuisance it cannot express: expect little transfer.)"
        return f"{text}\n\n{where}"
    if augment and augment != "none":
        story = ORACLE_STORY if WORLDS[world].oracle.get("augment") == augment else AUGMENT_STORY
        return f"{story.format(augment=augment)}\n\n{where}"
    return f"{KD_STORY}\n\n{where}"


def augmentor_verdict(reading: dict | None) -> str:
    """One sentence on whether a HARD augmentor found anything, from `augmentor.hardness_reading`; "" for
    runs without an augmentor."""
    if reading is None:
        return ""
    if reading["found"] is None:
        return "The augmentor is still warming up."
    if reading["found"]:
        return (f"The augmentor learned where the student disagrees with the teacher (hardness "
                f"{reading['value']:.2f}).")
    return (f"The augmentor has found nothing harder than the data (hardness {reading['value']:.2f}, below "
            f"{HARDNESS_FOUND:g}): these edits do not show the student what it lacks.")


def gallery_caption(reading: dict | None, augmented: str = "augmented (what the student trained on)") -> str:
    """The gallery's caption: its three rows, then whether the augmentor found anything (HARD runs)."""
    return " ".join(filter(None, (f"top: clean · middle: {augmented} · bottom: |x̃ − x|, where they differ.",
                                  augmentor_verdict(reading))))
