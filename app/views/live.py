"""Live training: configure a distillation run, start it, and watch HARD work while it trains.

The run is a separate engine process writing a run directory; this page only reads it (in two fragments:
the verdict and progress every 3 s; the figures and images every 0.5 s until the first images are drawn,
then every 6 s, with figures redrawn at most every 12 s or 24 s) and writes control requests. The run's id
is in the URL (`?run=`) and in the session, so a refresh, a second tab, a crashed page or a visit to
another page finds it again. Start also queues the run's plain-KD twin (unless switched off); the headline at
the top compares the two.
"""
import streamlit as st

from hard_core.errors import UserError
from hard_core.runs import RunReader, read_control
from lab import augmentor, figures, headline, images, runs, stories, teachers
from lab.markdown import md
from lab.live import RunView, eta_text, run_text, saved_config, world_text
from lab.scheduler import LIVE, server_priority
from lab.form import LAB_LIMITS, differences, unseen
from lab.widgets import (apply_preset, apply_url, chart, current_run, fill_form, invariance_view, leave_run, owner_key,
                         run_form, settings_to_url, show_run)

key = owner_key()
st.title("Live training")

preset = apply_preset()
apply_url()
run_id = current_run(key)
try:
    run_dir = runs.run_path(run_id) if run_id else None
except UserError as e:
    st.error(md(e))
    st.stop()
shown = saved_config(run_dir) if run_dir is not None and run_dir.is_dir() else {}
fill_form(run_id, shown)  # opening a run (a link, the Matrix, "Open a run") shows its settings in the form


def open_run() -> None:
    """"Open a run" chose one: show it (the form then shows its settings)."""
    opened = st.session_state.get("open_run")
    if opened:
        show_run(opened)
    st.session_state["open_run"] = None


with st.sidebar:
    st.header("New run")
    note, start = st.empty(), st.container()  # Start at the top: on the first screen, above the long form
    if preset:
        st.success(f"Preset **{preset}** loaded: press Start.")
    cfg = run_form(shown)
    twin = st.toggle("Also train its plain-KD twin", value=True, key="f_twin",
                     help="the same world, seed and steps without augmentation, for the headline's comparison; "
                          "a finished identical twin is reused, a new one trains beside it")
    if start.button("Start", type="primary", disabled=cfg is None, width="stretch"):
        try:
            new = runs.submit(cfg, key, twin=twin)
        except UserError as e:  # a queue limit, a full disk: one line, the form stays
            start.error(md(e))
        else:
            show_run(new)
            st.session_state["form_of"] = new  # the form already shows its settings
            st.rerun()
    if cfg is not None and shown:
        differ, hidden = [md(d) for d in differences(cfg, shown)], [md(h) for h in unseen(cfg)]  # run-file text
        note.caption(("These are the settings of the run on screen; Start trains a new run with them." if not differ
                      else "Start trains a new run. It differs from the run on screen in: " + ", ".join(differ[:5])
                      + (" …" if len(differ) > 5 else ""))
                     + (" Kept from it, not in the form: " + ", ".join(hidden) + "." if hidden else ""))
    elif cfg is not None:
        note.caption("Start trains a new run with these settings (the address keeps them for a link).")
        settings_to_url(cfg)
    if run_id:
        st.button("Show no run (compose a new one)", on_click=leave_run, width="stretch")

    known = {r["id"]: r for r in runs.list_all()}
    if known:
        st.divider()
        st.selectbox("Open a run", list(known), index=None, key="open_run", on_change=open_run,
                     placeholder=f"{len(known)} runs in {runs.root().name}/",
                     format_func=lambda i: f"{i} · {known[i]['hard'] if known[i]['hard'] != 'none' else 'KD'}"
                                           f" · {known[i]['state']}",
                     help="yours, other sessions' (read-only) and runs started from the CLI")

if not run_id:
    st.info("Press **Start** at the top of the sidebar. " + stories.intro(
        st.session_state.get("f_hard"), st.session_state.get("f_world"), st.session_state.get("f_augment")))
    st.page_link("views/learn.py", label="New to distillation? Start with the Learn page", icon=":material/school:")
    st.stop()
if not run_dir.is_dir():
    st.error(f"No run '{run_id}' in {runs.root()}.")
    st.stop()
st.caption(f"Run `{run_id}` · {md(run_text(shown))}")  # run ids match scheduler.ID: no backtick

mine = runs.can_control(run_id, key)
state = runs.state(run_id)
steering = mine and state in (*LIVE, "paused")
if steering:  # a run that has ended has nothing to steer: no controls
    b1, b2, b3 = st.columns(3)
    if state == "paused":
        b1.button("Resume", on_click=runs.resume, args=(run_id,), width="stretch")
    else:
        b1.button("Pause", on_click=runs.pause, args=(run_id,), disabled=state not in LIVE,
                  width="stretch")
    b2.button("Stop", on_click=runs.stop, args=(run_id,), disabled=state not in LIVE, width="stretch")
    with b3.popover("Knobs", width="stretch", disabled=state not in LIVE):
        with st.form("knobs"):
            now = {**RunReader(run_dir).config(), **read_control(run_dir)}  # the values in force
            lam = st.number_input("λ", value=float(now.get("hard_lambda", 1.0)), step=0.25)
            temperature = st.number_input("T", value=float(now.get("temperature", 4.0)), step=0.5)
            lr = st.number_input("lr", value=min(float(now.get("lr", 1e-3)), LAB_LIMITS["lr"]), step=1e-4,
                                 format="%.4f", max_value=LAB_LIMITS["lr"], help=f"at most {LAB_LIMITS['lr']:g}")
            if st.form_submit_button("Apply"):
                try:
                    runs.set_knobs(run_id, hard_lambda=lam, temperature=temperature, lr=lr)
                    st.toast("Sent: the run applies it at its next step")
                except UserError as e:
                    st.error(md(e))
elif not mine:
    world = world_text(run_dir)
    st.caption(f"Watching run `{run_id}` read-only: it belongs to another session or was started from the CLI"
               + (f" · {md(world)}" if world else "") + ".")
teacher_text = teachers.describe(shown)
if teacher_text:
    st.caption(f"Teacher: {md(teacher_text)}")


def numbers(view: RunView, twin: RunView | None) -> None:
    """The verdict line and the progress bar: what changes at every refresh."""
    line = headline.verdict_line(view, twin)
    if line:
        st.container(key="verdict").markdown(f"#### {line}")
    status, state = view.status(), runs.state(view.run_id)
    total = max(status.get("total_steps") or 1, 1)
    step = status.get("step", 0)
    if state == "queued":
        st.info(f"Queued: position {runs.queue_position(view.run_id)} (the lab runs "
                f"{runs.scheduler().max_running} at a time)")
    message = status.get("message") if status.get("state") == state else None  # not the reader's "died" guess
    st.progress(min(step / total, 1.0), text=f"**{state}** · step {step}/{total} · {eta_text(status)}"
                + (f" · {md(message)}" if message else ""))
    if state in ("failed", "died"):
        st.error(md(status.get("message") or "the run stopped unexpectedly; its checkpoint is kept"))


def pictures(view: RunView, twin: RunView | None) -> None:
    """The headline's maps and curves, the charts, the augmented images and the maps of the timeline."""
    headline.panel(view, twin, STORY if active else 0.0)
    c1, c2 = st.columns(2)
    steps, evals = view.count("step"), view.count("eval")
    every = DETAILS if runs.state(view.run_id) in LIVE else 0.0  # an ended run's charts show its last step

    def held(where, name: str) -> None:
        if view.held(name):
            where.caption("Held" + headline.HELD + ".")

    chart(c1, view.drawn("loss", steps, lambda: figures.loss_figure(view.events), every), "loss",
          f"Loss: {figures.WAITING_STEPS}")
    held(c1, "loss")
    chart(c2, view.drawn("accuracy", (evals, view.count("status")), lambda: figures.accuracy_figure(
        view.events, figures.world_suite(view.config())), every), "accuracy", f"Accuracy: {figures.WAITING_EVAL}")
    held(c2, "accuracy")
    hardness = view.drawn("hardness", steps, lambda: augmentor.hardness_figure(view.events), every)
    reading = augmentor.hardness_reading(view.events)
    if hardness is not None:
        st.plotly_chart(hardness, key="hardness")
        st.caption(reading["text"])
        held(st, "hardness")
    snaps = view.snapshot_events()
    if not snaps:
        st.caption("Waiting for the first images…")
        return
    steps = [e["step"] for e in snaps]
    follow = st.toggle("Follow the latest step", value=True, key="follow")
    at = steps[-1] if follow or len(steps) == 1 else st.select_slider("Timeline", steps, value=steps[-1], key="at")
    snap = view.snapshot(at)
    probe = view.probe_snapshot(at)
    st.subheader(f"What the student sees · step {at}")
    if view.one_d:
        st.plotly_chart(figures.signals_figure(snap), key="signals")
    else:
        st.image(view.picture("gallery", at, lambda: images.gallery(snap)), caption=stories.gallery_caption(reading))
    params = view.drawn("params", at, lambda: augmentor.params_figure(snap, view.config()), every if follow else 0)
    if params is not None:
        st.plotly_chart(params, key="params")
        held(st, "params")
    if probe is None:
        st.caption("The first disagreement maps come at the first probe step.")
        return
    st.subheader(f"Where teacher and student disagree · step {probe['_step']}")
    if view.one_d:
        st.plotly_chart(figures.disagreement_1d_figure(probe), key="disagreement")
    else:
        heat = view.picture("overlay", probe["_step"], lambda: images.overlay(probe["augmented"], probe["disagreement"]))
        st.image(heat, caption=images.OVERLAY_CAPTION)
    st.subheader("Invariance: teacher vs student")
    invariance_view(probe, "live", {"acc": "accuracy", "kl": "KL(clean ‖ moved)"},
                    lambda name, draw: view.drawn(name, probe["_step"], draw, every))


twin_id = runs.twin_of(run_id)


def going() -> bool:
    """Whether the run or its twin is still queued or training (the page keeps polling until both end)."""
    return any(runs.state(r) in LIVE for r in (run_id, twin_id) if r)


def views() -> tuple[RunView, RunView | None]:
    """The run's and its twin's views, kept in the session (each reads only what was appended), polled."""
    view, twin = st.session_state.get("view"), st.session_state.get("twin_view")
    if view is None or view.run_id != run_id:
        view = st.session_state["view"] = RunView(run_id, run_dir)
    if twin_id and (twin is None or twin.run_id != twin_id):
        twin = st.session_state["twin_view"] = RunView(twin_id, runs.run_path(twin_id))
    twin = twin if twin_id else None
    for v in (view, twin):
        if v is not None:
            v.poll()
    return view, twin


# Each refresh costs CPU that a small machine takes from training. Measured on 2 cores during a default run
# with its twin: Chromium's renderer spent ~1.9 s of CPU in 36 s on the verdict's 12 refreshes, and
# 0.15-0.3 s more on each plotly chart whose data changed. So the verdict and progress bar refresh every 3 s,
# the images every 0.5 s until the first ones are on screen, then every 6 s; and while the run is live the
# headline's figures redraw at most every 12 s, the other figures every 24 s (the renderer's CPU in 36 s:
# 5-7.5 s, against ~12 s when every refresh redraws them). At the lab's defaults the run logs a step every
# ~1.5 s, snapshots every ~3.5 s and evaluates every ~7 s; when it ends everything is drawn once more, up to date.
FIRST, NUMBERS, PICTURES = 0.5, 3.0, 6.0
STORY, DETAILS = 12.0, 24.0
active = going()
drawn = st.session_state.get("drawn") == run_id  # a refresh has drawn this run's first images


@st.fragment(run_every=NUMBERS if active else None)
def live_numbers() -> None:
    numbers(*views())
    if active and not going() or steering and runs.state(run_id) not in (*LIVE, "paused"):
        st.rerun()  # both runs ended, or this one (its controls go): draw everything once more


@st.fragment(run_every=(PICTURES if drawn else FIRST) if active else None)
def live_pictures() -> None:
    waiting = active and not drawn
    if waiting and st.session_state.get("drawn") == run_id:
        st.rerun()  # the first images are on screen: refresh at the slower pace from now on
    server_priority(waiting=waiting)
    view, twin = views()
    pictures(view, twin)
    if view.snapshot_events():
        st.session_state["drawn"] = run_id


live_numbers()
live_pictures()
