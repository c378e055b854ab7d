"""Augmentation explorer: see what a standard augmentation, CutMixPick or a finished run's HARD augmentor
does to a few test images, and rank the standard augmentations for a teacher by T. stddev.

The logic lives in lab/explore.py; this page only draws it.
"""
import streamlit as st

from hard_core.errors import UserError
from hard_core.runs import run_config
from lab import augmentor, explore, figures, images, runs, stories, teachers
from lab.markdown import md

st.title("Augmentation explorer")
st.caption("Pick a data set and an augmentation: the top row shows test images as they are, the row "
           "below what the augmentation makes of each, the bottom row where they differ. KD learns from every "
           "new view the teacher labels.")

c1, c2, c3 = st.columns([2, 3, 1])
label = c1.selectbox("Dataset", list(explore.DATASETS), key="x_dataset")
options = explore.choices(label)
augmentation = c2.selectbox("Augmentation", options, index=options.index(explore.FIRST), key="x_augmentation",
                            help="standard augmentations, CutMixPick (paper 2), or a learned HARD augmentor")
seed = int(c3.number_input("Seed", min_value=0, max_value=1_000_000, value=0, step=1, key="x_seed"))

run_dir, teacher_spec, world = None, "default", "shift"
if augmentation == explore.HARD:
    hard_runs = explore.hard_runs(label)
    if not hard_runs:
        st.info(f"No finished HARD run for {label} under `{runs.root()}` yet. Start one on the "
                "Live training page (the default is HARD-affine), then come back.")
    else:
        run_dir = hard_runs[st.selectbox("Finished HARD run", list(hard_runs), key="x_run")]
        try:
            trained = run_config(run_dir)
            teacher_spec, world = trained.teacher or "default", trained.world
        except UserError as e:
            st.error(md(e))
            run_dir = None

if augmentation != explore.HARD or run_dir is not None:
    try:
        shown = explore.explore(label, augmentation, seed, run_dir=run_dir)
    except (UserError, ValueError) as e:
        st.error(md(e))
        shown = None
    if shown is not None:
        if shown.one_d:
            st.plotly_chart(figures.signals_figure(shown.snapshot, n=4), key="x_signals")
            st.caption("Grey: the test signal · orange: after the augmentation.")
        else:
            st.image(images.gallery(shown.snapshot, n=8), caption=shown.note)
        n = len(shown.soft["clean"])
        st.table({"view": ["clean", "augmented"],
                  **{f"{i + 1}": [shown.soft["clean"][i], shown.soft["augmented"][i]] for i in range(n)}})
        st.caption(f"The teacher's soft label of each view above (its top {explore.TOP} classes at the KD "
                   f"temperature T = {shown.temperature:g}): what the student learns to match under KD. A new view "
                   "gets a new target; a view the teacher misreads teaches the wrong one.")
        config = run_config(run_dir).model_dump() if run_dir is not None else None
        params = augmentor.params_figure(shown.snapshot, config)
        if params is not None:
            st.plotly_chart(params, key="x_params")
            st.caption(f"The augmentor's choices on {explore.PARAM_SAMPLES} test images. "
                       + stories.augmentor_verdict(explore.run_hardness(run_dir)))

st.subheader("Which standard augmentation suits this teacher?")
st.markdown(explore.TSTDDEV_TEXT.format(collapse=explore.COLLAPSE))
name, canvas = explore.DATASETS[label]
teacher_name = teachers.describe({"dataset": name, "canvas": canvas, "world": world, "teacher": teacher_spec})
ranked_key = f"x_ranked:{label}:{world}:{teacher_spec}"


@st.cache_data(show_spinner="Scoring every augmentation with the teacher (minutes on 2 cores, once per teacher; "
               "then kept)…", max_entries=8)
def ranking(label: str, teacher_spec: str, world: str):
    return explore.rank(label, teacher_spec, world)


if st.button(f"Rank the standard augmentations for {teacher_name}", key="x_rank") or st.session_state.get(ranked_key):
    st.session_state[ranked_key] = True
    try:
        scores, how = ranking(label, teacher_spec, world)
    except UserError as e:
        st.error(md(e))
    else:
        st.plotly_chart(figures.tstddev_figure(scores), key="x_tstddev")
        st.markdown(explore.verdict(scores))
        st.caption(f"{how['chunks']} chunks of {how['chunk_batches']} batches of {how['batch_size']} training images "
                   f"(paper 2's protocol), seed {how['seed']}; image-only augmentations are left out for 1D data. "
                   "`python -m hard_core tstddev` prints the same table.")
        st.info(explore.VALIDATION, icon=":material/science:")
