"""HARD Lab: watch knowledge distillation with hard augmentations work.

    streamlit run app/streamlit_app.py      (or: make run)

The pages live in app/views/ (not pages/: st.navigation replaces the folder auto-discovery); shared,
Streamlit-free helpers in app/lab/. Runs are engine processes writing run directories under runs/
(or $HARD_LAB_RUNS); the pages only read them and write control requests.
"""
import streamlit as st
import torch

from hard_core.errors import UserError
from lab import runs
from lab.markdown import md
from lab.scheduler import server_priority

# The server draws small pictures; with torch's default of a thread per core its OpenMP threads spin on
# the core that trains the run (a live Live page: 4.5 s of server CPU in 36 s with 2 threads, 1.5 s with 1)
torch.set_num_threads(1)
st.set_page_config(page_title="HARD Lab", page_icon=":material/science:", layout="wide")
# Streamlit's header "Stop" (shown while a page's script runs) would stand next to the lab's Stop and stop
# something else; client.toolbarMode = "minimal" drops its menu but not that button, so it is hidden here
# (the running icon and the connection status stay)
st.html("<style>[data-testid='stStatusWidget'] button {display: none}</style>")

PAGES = [
    st.Page("views/live.py", title="Live training", icon=":material/play_circle:", default=True),
    st.Page("views/explorer.py", title="Augmentation explorer", icon=":material/auto_fix_high:"),
    st.Page("views/inspector.py", title="Invariance inspector", icon=":material/center_focus_strong:"),
    st.Page("views/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    st.Page("views/matrix.py", title="Matrix", icon=":material/grid_on:"),
    st.Page("views/learn.py", title="Learn", icon=":material/school:"),
]
try:
    runs.scheduler()  # start the queue with the server: queued runs from before a restart resume
    runs.root()
except UserError as e:  # e.g. $HARD_LAB_RUNS names a file: one line on every page, not a traceback
    st.error(md(e))
    st.stop()
server_priority()  # below the runs; the Live page raises it while it waits for a run's first images
page = st.navigation(PAGES)
if page is not PAGES[0]:
    # Streamlit forgets the state of widgets a page run did not draw: writing the Live page's run form
    # (keys f_*) back on the other pages keeps it for the user's return
    for name in [k for k in st.session_state if k.startswith("f_")]:
        st.session_state[name] = st.session_state[name]
page.run()
