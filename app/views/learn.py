"""Learn: knowledge distillation, temperature, why augmentation helps KD, and HARD's game, with links to
live examples in the lab."""
import streamlit as st

from hard_core.errors import UserError
from hard_core.worlds import WORLDS
from lab import explore, figures, images, stories, thrives
from lab.form import PRESETS
from lab.markdown import md
from lab.widgets import open_on_live, owner_key

key = owner_key()
st.title("Learn: distillation with hard augmentations")


def try_it(preset: str, label: str) -> None:
    st.page_link("views/live.py", label=label, icon=":material/play_arrow:", query_params={"preset": preset})


st.header("1 · Knowledge distillation")
st.markdown(
    "A big **teacher** network is already trained. A small **student** learns from it by matching the "
    "teacher's whole output distribution, not just the correct label: *this 7 looks a bit like a 1, and not "
    "at all like a 0*. Those soft relations carry what the teacher knows about how classes resemble each "
    "other. The student minimises\n\n"
    "$$\\mathcal{L}_{KD} = T^2 \\; \\mathrm{KL}\\big(\\sigma(t/T) \\,\\|\\, \\sigma(s/T)\\big)$$\n\n"
    "where $t$ and $s$ are the teacher's and the student's logits and $\\sigma$ is the softmax. "
    "The factor $T^2$ keeps the gradients the same size when the temperature changes.")
try_it("kd", "Distil the shipped CNN into an MLP (plain KD)")

st.header("2 · Temperature")
st.markdown("Dividing the logits by a temperature $T > 1$ softens the teacher's distribution, so the small "
            "probabilities (the *dark knowledge*) become visible to the student. Move the slider.")
c1, c2 = st.columns([1, 2])
with c1:
    temperature = st.slider("T", 0.5, 10.0, 4.0, 0.5, key="learn_T")
    st.caption("Logits of a teacher that sees a 7 that looks a little like a 1 and a 9.")
logits = [0.5, 4.0, 0.2, 1.0, -0.5, 0.1, -1.0, 9.0, 0.8, 3.0]
c2.plotly_chart(figures.temperature_figure(logits, temperature), key="temperature")

st.header("3 · Why augmentation helps distillation")
st.markdown(
    "With labels alone, a training image teaches the same thing in every epoch. With a teacher, every "
    "*different view* of an image gives a new, informative target: the teacher says what a shifted, "
    "cropped or mixed digit looks like. That is why KD keeps improving with longer training and stronger "
    "augmentation (mixup, CutMix), while cross-entropy training stops improving "
    "(Wang et al., *Knowledge distillation thrives on data augmentation*).")
paper2 = thrives.load()
offered = thrives.points(paper2.sweep) if paper2.sweep is not None else {}
if paper2.sweep is None:
    st.caption(md(paper2.problem))
else:
    st.plotly_chart(thrives.figure(paper2.sweep), key="paper2_sweep")
    st.caption(f"{thrives.gains(paper2.sweep)} {thrives.CAPTION} Made with: {md(paper2.sweep['command'])}")
if offered:
    c1, c2, c3, c4 = st.columns([2, 1.3, 1, 3], vertical_alignment="bottom")
    augment = c1.selectbox("Augmentation", list(dict.fromkeys(a for a, _, _ in offered)), key="paper2_augment")
    steps = c2.selectbox("Steps", list(dict.fromkeys(n for a, n, _ in offered if a == augment)), key="paper2_steps")
    seed = c3.selectbox("Seed", [s for a, n, s in offered if (a, n) == (augment, steps)], key="paper2_seed")
    if c4.button(f"Train {thrives.point_name(augment, steps)} live, with its CE twin", key="paper2_train",
                 type="primary", icon=":material/play_arrow:", width="stretch",
                 help="this point's KD run on the Live page, and beside it, in the background, the same run trained "
                      "with cross-entropy on labels alone (same augmentation, steps, seed and data)"):
        try:
            opened = thrives.open_point(paper2.sweep, augment, steps, seed, owner=key)
        except UserError as e:
            st.error(md(e))
        else:
            open_on_live(opened)
st.markdown(
    "**T. stddev** scores an augmentation using the teacher alone: average the teacher's softmax over a "
    "chunk of augmented images, repeat for many chunks, and take the standard deviation of those mean "
    "vectors (per class, then averaged). Paper 2 finds that a lower T. stddev predicts a lower student test "
    "loss, with no student trained. It has a blind spot: an augmentation the teacher cannot read (inverted "
    "digits for a teacher that never saw one) leaves its mean prediction flat and scores low, so the explorer "
    "shows the teacher's accuracy beside each score and flags those. **CutMixPick** makes several CutMix "
    "candidates and keeps the ones the teacher and student disagree on most.")
st.info(explore.VALIDATION, icon=":material/science:")
st.page_link("views/explorer.py", label="Rank the standard augmentations by T. stddev in the explorer",
             icon=":material/auto_fix_high:")
try_it("cutmixpick", "Distil with CutMixPick")

st.header("4 · HARD: an augmentor that hunts for disagreement")
st.markdown(
    "A fixed augmentation must be chosen by hand. HARD (Nix, Burg & Sinz, 2023) *learns* it. An "
    "**augmentor** network transforms the training images and plays a game against the student:\n\n"
    "$$\\max_{\\text{augmentor}} \\; \\mathrm{KL}\\big(T(\\tilde x) \\,\\|\\, S(\\tilde x)\\big) "
    "\\; - \\; \\lambda \\, \\mathrm{KL}\\big(T(x) \\,\\|\\, T(\\tilde x)\\big)$$\n\n"
    "It looks for inputs $\\tilde x$ where teacher and student **disagree**, while the second term keeps "
    "the teacher's own prediction unchanged, so $\\tilde x$ is still a picture of the same thing. The "
    "student trains with KD on clean and augmented images. In the toy problem, a CNN teacher knows that a "
    "shifted digit is the same digit; an MLP student does not. Plain KD on centred digits leaves the "
    "student at about 20–35% on shifted digits. The affine augmentor discovers by itself that shifting is "
    "where the student fails, and the student's shift accuracy climbs to about 93%, close to the 94% of "
    "an oracle that shifts at random.")
st.markdown("Each HARD family can express some nuisances and not others, so each has a *world* where it "
            "matters: a nuisance the teacher learned and the student's data lacks.")
for family, label in (("affine", "HARD-affine: shift world (default)"), ("colour", "HARD-colour: polarity world"),
                      ("mix", "HARD-mix: scarce world"), ("vae", "HARD-vae: scarce world")):
    c1, c2 = st.columns([2, 3])
    with c1:
        try_it(f"hard-{family}", label)
    c2.caption(stories.HARD_STORIES[family][1])
try_it("kd-shift", "Compare with the oracle: KD + random shifts")
with st.expander("What each world's nuisance does to a digit"):
    for world in ("shift", "rotation", "polarity", "thickness"):
        nuisance = WORLDS[world].oracle["augment"]  # the world's oracle augmentation is its nuisance
        shown = explore.explore(next(iter(explore.DATASETS)), nuisance, seed=0, n=8)
        st.image(images.gallery(shown.snapshot, n=8, change=False),
                 caption=f"{world} world · top: plain test digits, what the student trains on · below: "
                         f"{WORLDS[world].nuisance}, what the teacher learned to read")
    st.caption("The scarce world has no nuisance to show: its student sees 50 digits per class instead of 400.")
st.markdown(
    "**What to look at on the Live page:** the *invariance* heatmaps. Each cell is the accuracy on test "
    "digits moved by (dy, dx). The teacher's map is flat and bright: it is shift-invariant. The student's "
    "map starts bright only in the centre; under HARD it flattens as the invariance transfers. The "
    "*disagreement* maps show where, pixel by pixel, a change would move teacher and student apart.")
st.caption(f"Presets: {', '.join(PRESETS)}.")
