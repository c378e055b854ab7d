"""Invariance inspector: for one image and a finished distillation run, what do the teacher and the
student predict, where do they disagree, and how do their outputs change when the image moves?

The logic lives in lab/inspection.py; this page only draws it.
"""
import streamlit as st

from hard_core.errors import UserError
from lab import figures, images, inspection, runs
from lab.markdown import md
from lab.widgets import invariance_view

st.title("Invariance inspector")
finished = inspection.inspectable_runs()
if not finished:
    st.info(f"No finished distillation run under `{runs.root()}` yet. Train one on the Live "
            "training page; it appears here when it finishes.")
    st.stop()

choice = st.selectbox("Finished run", list(finished), key="i_run")
try:
    run = inspection.load(finished[choice])
except (UserError, OSError, ValueError) as e:
    st.error(f"Cannot load this run: {md(e)}")
    st.stop()
one_d = run.dataset.is_1d

c1, c2 = st.columns([1, 2])
source = c1.radio("Image", ["test image", "upload"], horizontal=True, key="i_source", disabled=one_d)
if one_d:
    c1.caption("1D runs take test signals only: uploads are for image runs.")
if source == "upload" and not one_d:
    # no `type=` filter: the uploader would refuse a wrong file with a red chip and the reason in a tooltip;
    # read_upload checks the content and says what is wrong, in words, right under the uploader. The limit
    # is stated once, in the label; the widget's own line states the larger transport limit, so it is hidden
    st.html("<style>.st-key-i_upload [data-testid='stFileUploaderDropzoneInstructions'] {display: none}</style>")
    upload = c2.file_uploader(f"A digit, PNG or JPEG, at most {inspection.MAX_UPLOAD_MB} MB", key="i_upload")
    if upload is None:
        st.info("Upload an image: it is converted to the run's input (greyscale, centred on the canvas).")
        st.stop()
    try:
        x, note = inspection.read_upload(upload.getvalue(), run.dataset)
    except inspection.UploadError as e:
        c2.error(f"Cannot use {md(upload.name)}: {md(e)}.", icon=":material/error:")
        st.stop()
    label = None
else:
    index = c2.slider("Test image", 0, len(run.dataset.test) - 1, 0, key="i_index")
    x, label = inspection.test_image(run, index)
    note = f"test image {index}, label {run.dataset.classes[label]}"

preds = inspection.predict(run, x)
if label is None:  # an upload: "correct" in the accuracy maps means "as the teacher calls the clean image"
    label = run.dataset.classes.index(preds["teacher"][0][0])
st.subheader("Predictions")
cols = st.columns(2)
for col, model in zip(cols, ("teacher", "student")):
    (top, p), *rest = preds[model]
    col.metric(model, f"{top} · {p:.0%}")
    col.caption("then " + ", ".join(f"{c} ({q:.0%})" for c, q in rest))

st.subheader("Where teacher and student disagree")
heat = inspection.disagreement(run, x)
if one_d:
    st.plotly_chart(figures.disagreement_1d_figure({"disagreement": heat, "augmented": x}, n=1), key="i_dis1d")
else:
    st.image(images.overlay(x, heat, with_images=True, nrow=2, scale=5),
             caption=f"{note} · left: the image · right: where the disagreement is, at T = {run.cfg.temperature:g}. "
                     + images.OVERLAY_CAPTION)

st.subheader("Invariance: how the outputs change under the world's nuisance")
maps = inspection.invariance(run, x, label)
invariance_view(maps, "i", {"kl": "KL(clean ‖ moved)", "acc": "still correct?"})
correct = " (here: the teacher's call on the clean upload)." if source == "upload" else "."
if one_d:
    st.caption("For one signal the KL is the informative measure: 0 where the output did not move. "
               "\"Still correct\" is 1 where the shifted signal keeps the label.")
else:
    st.caption(f"For one image the KL is the informative measure: 0 where the output did not move (on the "
               f"shift grid bright cells; one fixed scale for both models, {figures.KL_TOP:g} nat or more is "
               "darkest). A shift-invariant teacher is bright everywhere; a student that only learned centred "
               "digits darkens away from the centre. The curves (rotation angle, polarity blend, stroke "
               "thickness) follow the world's nuisance from none to strong: at blend 0.5 every image is flat "
               "grey, so every model fails there. \"Still correct\" is 1 where the changed image keeps the label"
               + correct)
