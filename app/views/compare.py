"""Compare runs: overlay the curves of finished or running runs and their last accuracy on every suite.

Read-only: this page never changes a run. Names, colours, figures and tables come from lab/compare.py.
"""
import functools

import streamlit as st

from lab import compare, runs
from lab.markdown import md

st.title("Compare runs")
rows = {r["id"]: r for r in compare.comparable(runs.list_all())}
if not rows:
    st.info("No runs to compare yet. Start one or two on the Live training page (say plain KD and HARD-affine), "
            "then come back here to put their curves side by side.")
    st.page_link("views/live.py", label="Go to Live training", icon=":material/play_circle:")
    st.stop()

options = compare.names(list(rows.values()))  # unique among all runs, so the picker never shows two alike
chosen = st.multiselect("Runs", list(rows), default=list(rows)[:2], key="compare_runs",
                        format_func=lambda run_id: compare.option(rows[run_id], options[run_id]),
                        help="world · method · seed, newest first; runs still training update every few seconds")
if not chosen:
    st.info("Choose one or more runs above.")
    st.stop()
active = any(rows[run_id]["state"] in ("starting", "running", "paused") for run_id in chosen)


@st.fragment(run_every=3.0 if active else None)
def show() -> None:
    if active and not compare.any_active(chosen):
        st.rerun()  # the last run ended: draw once more, then stop polling
    picked = [compare.refresh(rows[run_id]) for run_id in chosen]
    look = compare.looks(picked)  # one name and colour per run, in every chart and table below
    curves = {r["id"]: compare.curves(r["path"]) for r in picked}
    ood = compare.suites(curves)
    figures = {"test": compare.accuracy_figure(curves, "test", look)}
    c1, c2 = st.columns(2)
    c1.plotly_chart(figures["test"], key="compare_test")
    with c2:
        if ood:
            suite = st.selectbox("Out-of-domain suite", ood, index=ood.index("shift") if "shift" in ood else 0,
                                 key="compare_suite", help="an out-of-domain test suite: the test digits moved, "
                                 "rotated, blurred, ...")
            figures[suite] = compare.accuracy_figure(curves, suite, look)
            st.plotly_chart(figures[suite], key="compare_ood")
        else:
            st.caption("These runs were evaluated on the test split only (no OOD suites).")
    figures["loss"] = compare.loss_figure(curves, picked, look)
    st.plotly_chart(figures["loss"], key="compare_loss")

    table = compare.metrics_table(picked, look)
    done = table["state"] == "finished"
    percent = {c: st.column_config.NumberColumn(c, format="percent") for c in ("student acc", "teacher acc",
                                                                               "agreement")}
    if table.empty:
        st.caption("No evaluation yet: the table fills in at each run's first evaluation.")
    if done.any():
        st.subheader("Final metrics")
        st.dataframe(table[done], hide_index=True, key="compare_table", column_config=percent)
    if not done.all():  # running, stopped or failed: their numbers are the latest so far, not final
        st.subheader("Not finished: latest evaluation")
        st.dataframe(table[~done], hide_index=True, key="compare_unfinished", column_config=percent)
    cols = st.columns(1 + len(figures))
    cols[0].download_button("Download CSV", table.to_csv(index=False), file_name="hard-lab-compare.csv",
                            mime="text/csv", key="compare_csv", icon=":material/download:")
    error = compare.png_error()
    if error:
        st.warning(f"PNG export is not available here ({md(error)}); the CSV still is.")
        return
    for col, (name, fig) in zip(cols[1:], figures.items()):
        col.download_button(f"Download PNG: {name}", functools.partial(compare.to_png, fig),
                            file_name=f"hard-lab-{name}.png", mime="image/png", key=f"compare_png_{name}")


show()
