"""Matrix: which method transfers which invariance. Rows are worlds (a nuisance the teacher learned and the
student's data lacks), columns are methods; a click on a cell opens that cell's run on the Live page.

The numbers are the shipped docs/matrix/matrix.json (or $HARD_LAB_MATRIX), made by `python -m hard_core
matrix`; this page only reads it, and shows each number once (in the heatmap; details on hover). Figures,
the clicked cell and the run it opens come from lab/matrix.py.
"""
import streamlit as st

from hard_core.errors import UserError
from lab import matrix as lab_matrix
from lab.markdown import md
from lab.widgets import open_on_live, owner_key

key = owner_key()
st.title("Invariance-transfer matrix")
where = lab_matrix.path()
try:
    matrix = lab_matrix.load(where)
except UserError as e:
    st.error(md(e))
    st.stop()
if matrix is None:
    st.info(f"No matrix at {where} yet: make it with `python -m hard_core matrix --out {where.parent}`.")
    st.stop()

settings = matrix["settings"]
worlds, methods = settings["worlds"], settings["methods"]
event = st.plotly_chart(lab_matrix.heatmap(matrix), key="matrix_heatmap", on_select="rerun",
                        selection_mode="points")
st.caption("Colour: **gap closed** = (method − KD) / (oracle − KD) on the world's OOD suite, 0 is plain KD, 1 the "
           "oracle (KD trained with the nuisance itself as augmentation, which bounds what transfer can reach). "
           f"Numbers: the student's OOD accuracy; hover a cell for its in-domain accuracy. {settings['student']} "
           f"students, {settings['steps']} steps, mean of {settings['seeds']} seed(s); the scarce world's suite is "
           f"in-domain test accuracy. Made with `{matrix.get('command', '?')}`.")

st.subheader("Watch a cell train")
st.caption("Click a cell above, or pick it here, to open its run on the Live training page with its curves, "
           "images and invariance maps: the lab's run of that cell if there is one, else a new one, trained live.")
c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
world = c1.selectbox("World", worlds, key="matrix_world")
method = c2.selectbox("Method", methods, key="matrix_method")
picked = (world, method) if c3.button("Open", key="matrix_open", type="primary", width="stretch") \
    else lab_matrix.picked(matrix, event.selection)
if picked:
    try:
        run_id = lab_matrix.open_cell(matrix, *picked, owner=key)
    except UserError as e:  # a queue limit, a full disk: it may quote a file or a variable, shown as text
        st.error(md(e))
        st.stop()
    open_on_live(run_id)
