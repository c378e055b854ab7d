"""The Streamlit widgets the pages share: the browser's owner key, the Live page's current run, and the
run-configuration form (its choices, defaults and link with run configs: `form.py`), which shows the run on
screen (`fill_form`) or keeps a new run's settings in the address (`apply_url`, `settings_to_url`).

(Every other module in `lab` is Streamlit-free; this one is the pages' toolbox.)
"""
from __future__ import annotations

import secrets

import streamlit as st
from pydantic import ValidationError

from hard_core.augment import AUGMENTATIONS
from hard_core.config import FAMILY_LAMBDA, UNLEARNED, RunConfig
from hard_core.worlds import WORLDS

from . import figures, runs, teachers
from .explore import DATASETS
from .form import (DOFS, HARD, LAB_DEFAULTS, PRESETS, STUDENTS, URL_FIELDS, form_values, lab_limits)
from .markdown import md

COOKIE = "hard_lab_key"  # the browser cookie that holds the owner key
COOKIE_DAYS = 30


def _valid(key) -> bool:
    return isinstance(key, str) and 0 < len(key) <= 64 and key.replace("-", "").replace("_", "").isalnum()


def browser_cookie() -> str | None:
    """The owner-key cookie this browser sent with the session's request, if any."""
    return st.context.cookies.get(COOKIE)


def owner_key() -> str:
    """This browser's key to its runs: whoever holds it may steer them, everyone else only watches.

    It lives in a cookie (never in the address or on screen): the session reads it from the request
    (`st.context.cookies`); a new browser gets a fresh key, written into the cookie by a line of
    JavaScript, so a refresh or a second tab in the same browser keeps control. (A `?key=` left in the
    address by older versions is dropped.)"""
    cookie = browser_cookie()
    key = st.session_state.get("owner_key") or cookie
    if not _valid(key):
        key = secrets.token_urlsafe(16)
    st.session_state["owner_key"] = key
    if "key" in st.query_params:
        del st.query_params["key"]
    if cookie != key and st.session_state.get("_cookie_sent") != key:
        st.session_state["_cookie_sent"] = key  # once per session: the script runs in the browser for good
        st.html(f"<script>document.cookie = '{COOKIE}={key}; path=/; max-age={COOKIE_DAYS * 86400}; "
                "SameSite=Strict';</script>", unsafe_allow_javascript=True)
    return key


def current_run(owner: str) -> str | None:
    """The run the Live page shows: the address's `?run=`, else the one this session showed last (a
    visit to another page drops the address's query), else this browser's newest run still going.
    It is put (back) into the address, so a refresh or a copied link finds it."""
    run_id = st.query_params.get("run") or st.session_state.get("live_run")
    if run_id is None:  # not "" (the page was told to show no run): a new tab finds the browser's live run
        run_id = runs.latest_live(owner)
    if run_id:
        st.session_state["live_run"] = run_id
        if st.query_params.get("run") != run_id:
            st.query_params["run"] = run_id
    return run_id


def apply_preset() -> str | None:
    """Fill the form from `?preset=` (a Learn-page link) once, then drop it from the URL. A preset is a new
    run: the page leaves the run it showed and shows the form's story."""
    name = st.query_params.get("preset")
    if name is None:
        return None
    del st.query_params["preset"]
    if name not in PRESETS:
        return None
    st.session_state.update({"f_dataset": next(iter(DATASETS)), **PRESETS[name]})
    leave_run()
    return name


def fill_form(run_id: str | None, cfg: dict) -> None:
    """Show run `run_id`'s config in the form, once per run opened (call before the form draws); a run
    the user changed the form for keeps the user's changes until another run is opened."""
    if run_id and st.session_state.get("form_of") != run_id and cfg:
        st.session_state.update(form_values(cfg))
        st.session_state["form_of"] = run_id


def show_run(run_id: str) -> None:
    """Show run `run_id`: its id in the address and the session (a new run's settings leave the address)."""
    st.session_state["live_run"] = run_id
    for k in URL_FIELDS:
        if k in st.query_params:
            del st.query_params[k]
    st.query_params["run"] = run_id


def open_on_live(run_id: str) -> None:
    """Go to the Live page showing run `run_id` (a Matrix cell, a point of the Learn page's figure), not the run
    it showed before."""
    for name in ("view", "twin_view", "open_run"):
        st.session_state.pop(name, None)
    st.session_state["live_run"] = run_id
    st.switch_page("views/live.py", query_params={"run": run_id})


def leave_run() -> None:
    """Show no run: the page shows the form's new run (a preset, a link with settings, "New run")."""
    st.session_state["live_run"] = ""
    st.session_state["form_of"] = None
    if "run" in st.query_params:
        del st.query_params["run"]


def apply_url() -> bool:
    """Fill the form from a new run's settings in the address (`?world=polarity&hard=colour&steps=300`), once per
    address; bad values are one warning line. Returns whether the address held settings."""
    given = {k: st.query_params.get(k) for k in URL_FIELDS if k in st.query_params}
    if not given or "run" in st.query_params:
        return False
    if st.session_state.get("url_applied") != given:
        st.session_state["url_applied"] = given
        try:
            cfg = RunConfig(**{**LAB_DEFAULTS, **{k: None if v == "" else v for k, v in given.items()}})
        except ValidationError as e:
            problem = e.errors()[0]
            where = problem["loc"][0] if problem["loc"] else ""  # a link anyone can craft: escaped
            st.warning(f"The address's run settings are not valid ({md(where)}: {md(problem['msg'])}); the form "
                       "keeps its own.", icon=":material/warning:")
            return True
        st.session_state.update(form_values(cfg.model_dump(mode="json")))
        leave_run()
    return True


def settings_to_url(cfg: RunConfig) -> None:
    """Put a new run's settings (those that differ from the lab's defaults) into the address, so that a copied
    link opens the same form: the lab's whole state in the URL, as TF Playground keeps it (never a key)."""
    base = RunConfig(**LAB_DEFAULTS).model_dump(mode="json")
    mine = cfg.model_dump(mode="json")
    want = {k: "" if mine[k] is None else str(mine[k]) for k in URL_FIELDS if mine.get(k) != base.get(k)}
    for k in URL_FIELDS:
        if k in st.query_params and k not in want:
            del st.query_params[k]
    for k, v in want.items():
        if st.query_params.get(k) != v:
            st.query_params[k] = v
    st.session_state["url_applied"] = {k: v for k, v in want.items()}


def run_form(base: dict | None = None) -> RunConfig | None:
    """The run-configuration controls; returns a valid RunConfig, or None after showing, under each bad
    field, one line saying what is wrong with it. base: the config of the run on screen, whose settings
    without a widget (suites, cadence, ...) the new run keeps, so Start on an opened run trains it again;
    else the lab's defaults."""
    values, slots = {}, {}

    def field(name, widget):
        values[name] = widget
        slots[name] = st.empty()

    label = st.selectbox("Dataset", list(DATASETS), key="f_dataset", help="built in, offline")
    values["dataset"], values["canvas"] = DATASETS[label]
    slots["dataset"] = slots["canvas"] = st.empty()
    field("world", st.selectbox("World", list(WORLDS), key="f_world", format_func=lambda w: f"{w}: {WORLDS[w].nuisance}",
                                help="the nuisance the teacher learned and the student's data lacks: picks the "
                                     "shipped teacher and the OOD suite that tests the transfer"))
    values["teacher"], teacher_error = teacher_field(values["dataset"], values["canvas"], values["world"])
    slots["teacher"] = st.empty()
    if teacher_error:
        slots["teacher"].error(md(teacher_error), icon=":material/error:")  # it quotes the typed reference
    field("student", st.selectbox("Student", STUDENTS, key="f_student"))
    field("augment", st.selectbox("Standard augmentation", list(AUGMENTATIONS), key="f_augment",
                                  help="applied before the HARD augmentor; cutmixpick keeps the candidates "
                                       "the teacher and student disagree on most"))
    field("hard", st.selectbox("HARD augmentor", list(HARD), format_func=HARD.get, key="f_hard",
                              help="learns to make hard examples: where teacher and student disagree"))
    if values["hard"] == "affine":
        dofs = st.multiselect("Affine degrees of freedom", DOFS, default=["translate"], key="f_dofs")
        values["affine"] = ",".join(dofs)
        slots["affine"] = st.empty()
    field("steps", st.number_input("Steps", value=LAB_DEFAULTS["steps"], step=100, key="f_steps"))
    default = {name: f.default for name, f in RunConfig.model_fields.items()}  # the engine's own defaults
    own = ", ".join(f"{family} {lam:g}" for family, lam in FAMILY_LAMBDA.items())
    field("hard_lambda", st.number_input("λ (teacher consistency)", value=None, step=0.25, key="f_lambda",
                                         placeholder="the family's own", help=f"empty: the family's own ({own})"))
    field("temperature", st.number_input("Temperature T", value=default["temperature"], step=0.5, key="f_T"))
    field("lr", st.number_input("Learning rate", value=default["lr"], step=1e-4, format="%.4f", key="f_lr"))
    field("batch_size", st.number_input("Batch size", value=default["batch_size"], step=32, key="f_batch"))
    field("seed", st.number_input("Seed", value=default["seed"], step=1, key="f_seed"))
    field("device", st.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="f_device"))
    if teacher_error:
        return None
    if values.get("affine") == "":
        slots["affine"].error("choose at least one degree of freedom", icon=":material/error:")
        return None
    try:
        kept = {k: v for k, v in (base or {}).items() if k in RunConfig.model_fields and k not in UNLEARNED}
        cfg = RunConfig(**{**LAB_DEFAULTS, **kept, **values})
    except ValidationError as e:
        for err in e.errors():
            name = str(err["loc"][0]) if err["loc"] else "steps"
            slots.get(name, st.empty()).error(err["msg"].replace("Input should be", "must be"), icon=":material/error:")
        return None
    problems = lab_limits(cfg, label)
    for name, message in problems.items():
        slots[name].error(message, icon=":material/error:")
    return None if problems else cfg


def teacher_field(dataset: str, canvas: int | None, world: str) -> tuple[str, str | None]:
    """The Teacher choice (the world's shipped teacher, finished pretrain runs, or your own: a folder or file
    on the server, typed in a field below it), checked as the engine loads it. Returns (--teacher value, the
    one line that says what is wrong with it or None); a teacher of your own is described under its field."""
    options = teachers.choices(dataset, canvas, world)
    choice = st.selectbox("Teacher", list(options), key="f_teacher", format_func=lambda v: options.get(v, v),
                          help="the world's shipped CNN (trained with its nuisance), a finished pretrain run, or "
                               "a teacher of your own on the server")
    if choice != teachers.OWN:
        ref = choice if choice in options else "default"
    else:
        ref = teachers.resolve(st.text_input("Teacher folder or file on the server", key="f_teacher_path",
                                             placeholder=teachers.PLACEHOLDER, help=teachers.HELP))
    with st.spinner("Loading the teacher to check it…", show_time=False):
        checked = teachers.check(ref, dataset, canvas, world)
    if checked.error is None and choice == teachers.OWN:
        st.caption(f"Teacher: {md(checked.description)}")
    return ref, checked.error


def chart(where, fig, key: str, waiting: str) -> None:
    """A plotly chart in `where` (st or a column), or while `fig` is None the line `waiting` in its place."""
    if fig is None:
        where.caption(waiting)
    else:
        where.plotly_chart(fig, key=key)


def invariance_view(maps: dict, key: str, measures: dict[str, str], drawn=None) -> None:
    """Radios for the grid and the measure (value -> label), then the teacher and student invariance maps
    side by side. `maps` holds snapshot-style `invariance.<grid>.<model>.<measure>` tensors. drawn: keeps
    the figure, `drawn(name, draw)` (a live page's `RunView.drawn` at the maps' step), else drawn each time.
    The grids are the run's own (`hard_core.probes.live.run_grids`): the world's first, then shift."""
    grids = list(dict.fromkeys(k.split(".")[1] for k in maps if k.startswith("invariance.") and ".teacher." in k))
    grids.sort(key=lambda g: g == "shift")  # the world's own nuisance first (a snapshot's keys come sorted)
    g1, g2 = st.columns(2)
    grid = g1.radio("Grid", grids, horizontal=True, key=f"{key}_grid",
                    format_func=lambda g: figures.GRID_NAMES.get(g, g))
    metric = g2.radio("Measure", list(measures), horizontal=True, key=f"{key}_metric", format_func=measures.get)
    draw = lambda: figures.invariance_figure(maps, grid, metric)  # noqa: E731
    st.plotly_chart(drawn(("invariance", grid, metric), draw) if drawn else draw(), key=f"{key}_invariance")
