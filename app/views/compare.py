"""Compare runs: overlay the curves of finished or running runs and their final accuracy on every suite.

Read-only: this page never changes a run. Figures and the table come from lab/compare.py.
"""
import functools

import streamlit as st

from lab import compare, runs

st.title("Compare runs")
rows = {r["id"]: r for r in compare.comparable(runs.list_all())}
if not rows:
    st.info("No runs to compare yet. Start one or two on the Live training page (say plain KD and HARD-affine), "
            "then come back here to put their curves side by side.")
    st.page_link("views/live.py", label="Go to Live training", icon=":material/play_circle:")
    st.stop()

chosen = st.multiselect("Runs", list(rows), default=list(rows)[:2], key="compare_runs",
                        format_func=lambda run_id: compare.label(rows[run_id]),
                        help="newest first; runs still training update every few seconds")
if not chosen:
    st.info("Choose one or more runs above.")
    st.stop()
active = any(rows[run_id]["state"] in ("starting", "running", "paused") for run_id in chosen)


@st.fragment(run_every=3.0 if active else None)
def show() -> None:
    if active and not compare.any_active(chosen):
        st.rerun()  # the last run ended: draw once more, then stop polling
    picked = [rows[run_id] for run_id in chosen]
    curves = {r["id"]: compare.curves(r["path"]) for r in picked}
    ood = compare.suites(curves)
    figures = {"test": compare.accuracy_figure(curves, "test")}
    c1, c2 = st.columns(2)
    c1.plotly_chart(figures["test"], key="compare_test")
    with c2:
        if ood:
            suite = st.selectbox("Out-of-domain suite", ood, index=ood.index("shift") if "shift" in ood else 0,
                                 key="compare_suite", help="an out-of-domain test suite: the test digits moved, "
                                 "rotated, blurred, ...")
            figures[suite] = compare.accuracy_figure(curves, suite)
            st.plotly_chart(figures[suite], key="compare_ood")
        else:
            st.caption("These runs were evaluated on the test split only (no OOD suites).")
    figures["loss"] = compare.loss_figure(curves)
    st.plotly_chart(figures["loss"], key="compare_loss")

    st.subheader("Final metrics")
    table = compare.metrics_table(picked)
    st.dataframe(table, hide_index=True, key="compare_table",
                 column_config={c: st.column_config.NumberColumn(c, format="percent")
                                for c in ("student acc", "teacher acc", "agreement")})
    cols = st.columns(1 + len(figures))
    cols[0].download_button("Download CSV", table.to_csv(index=False), file_name="hard-lab-compare.csv",
                            mime="text/csv", key="compare_csv", icon=":material/download:")
    error = compare.png_error()
    if error:
        st.warning(f"PNG export is not available here ({error}); the CSV still is.")
        return
    for col, (name, fig) in zip(cols[1:], figures.items()):
        col.download_button(f"Download PNG: {name}", functools.partial(compare.to_png, fig),
                            file_name=f"hard-lab-{name}.png", mime="image/png", key=f"compare_png_{name}")


show()
