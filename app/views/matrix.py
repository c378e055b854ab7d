"""Matrix: which method transfers which invariance. Rows are worlds (a nuisance the teacher learned and the
student's data lacks), columns are methods; a cell's button trains that run again, live.

The numbers are the shipped docs/matrix/matrix.json (or $HARD_LAB_MATRIX), made by `python -m hard_core
matrix`; this page only reads it. Figures and configs come from lab/matrix.py.
"""
import streamlit as st

from hard_core.errors import UserError
from hard_core.runs.matrix import markdown_table
from lab import matrix as lab_matrix
from lab import runs
from lab.widgets import owner_key

key = owner_key()
st.title("Invariance-transfer matrix")
where = lab_matrix.path()
try:
    matrix = lab_matrix.load(where)
except UserError as e:
    st.error(str(e))
    st.stop()
if matrix is None:
    st.info(f"No matrix at {where} yet: make it with `python -m hard_core matrix --out {where.parent}`.")
    st.stop()

settings = matrix["settings"]
worlds, methods = settings["worlds"], settings["methods"]
st.plotly_chart(lab_matrix.heatmap(matrix), key="matrix_heatmap")
st.caption("**Gap closed** = (method − KD) / (oracle − KD) on the world's OOD suite: 0 is plain KD, 1 is the "
           "oracle (KD trained with the nuisance itself as augmentation, which bounds what transfer can reach). "
           f"{settings['student']} students, {settings['steps']} steps, mean of {settings['seeds']} seed(s); "
           "the scarce world's suite is in-domain test accuracy.")
st.markdown(markdown_table(matrix))
st.caption(matrix.get("legend", "") + f" Made with `{matrix.get('command', '?')}`.")

st.subheader("Watch a cell train")
st.caption("Each button is a cell (OOD / in-domain accuracy, gap closed). Press one to train that run again on "
           "the Live training page, with its curves, images and invariance maps.")
header = st.columns(1 + len(methods))
for col, name in zip(header[1:], methods):
    col.markdown(f"**{name}**")
picked = None
for w in worlds:
    row = st.columns(1 + len(methods))
    row[0].markdown(f"**{w}**")
    for col, m in zip(row[1:], methods):
        if col.button(lab_matrix.label(matrix, w, m), key=f"matrix_{w}_{m}", use_container_width=True,
                      help=f"train {m} in the {w} world, live"):
            picked = (w, m)
if picked:
    try:
        run_id = runs.submit(lab_matrix.live_config(matrix, *picked), key, twin=True)
    except UserError as e:
        st.error(str(e))
        st.stop()
    for name in ("view", "twin_view", "open_run"):  # the Live page opens this run, not the one it showed before
        st.session_state.pop(name, None)
    st.session_state["live_run"] = run_id
    st.switch_page("views/live.py", query_params={"run": run_id})
