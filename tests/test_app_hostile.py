"""Class 1 of issue 24 in the lab: a runs folder that holds broken runs of every kind (a non-UTF-8 status.json,
binary events.jsonl lines, JSON of the wrong shape, a garbage lab.json and snapshot) beside good ones. Every
page still draws and lists the good runs, the Live page's form still draws, and the scheduler still starts a
queued run."""
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.config import RunConfig

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
GOOD = ("hard-affine-20", "hard-1d-20")


def break_runs(root: Path, good: Path) -> None:
    """Copies of a good run, each broken in one way (and one run that is nothing but garbage)."""
    def copy(name: str) -> Path:
        d = root / name
        shutil.copytree(good, d)
        return d

    (copy("bad-status") / "status.json").write_bytes(b'{"state": "fin\xff\xfeished", "step": 20}')
    events = copy("binary-events") / "events.jsonl"
    lines = events.read_bytes().split(b"\n")
    events.write_bytes(b"\n".join(line + b"\x00\xff\xc3(" if i % 3 == 0 else line for i, line in enumerate(lines))
                       + b"\xde\xad\xbe\xef\n\x00\x00\n")
    d = copy("wrong-shape")
    (d / "config.json").write_text(json.dumps({"config": {"steps": "many", "hard": 5, "world": ["shift"],
                                                          "dataset": {"x": 1}, "lr": "fast"}, "distributed": 7}))
    (d / "status.json").write_text(json.dumps({"state": ["finished"], "step": "20", "total_steps": None,
                                               "message": {"a": 1}, "pid": 10 ** 30, "updated": "now"}))
    with open(d / "events.jsonl", "a") as f:
        for bad in ({"kind": "eval", "step": 30, "model": "student"},  # an eval without acc
                    {"kind": "eval", "step": 30, "model": "student", "acc": "0.9"},
                    {"kind": "step", "step": 30.5, "loss": 1.0, "lr": 1, "temperature": 1, "alpha": 1},
                    {"kind": "step", "step": [30], "loss": "x"},
                    {"kind": "snapshot", "step": 30, "file": "../../../../etc/passwd", "keys": ["clean"]},
                    [1, 2], "text", None, 12):
            f.write(json.dumps(bad) + "\n")
    d = copy("garbage-lab")
    (d / "lab.json").write_bytes(b"\xff\xfe garbage \x00")
    (d / "request.json").write_bytes(b"[[[[")
    for snap in (d / "snapshots").glob("*.safetensors"):
        snap.write_bytes(b"\x00garbage")
    d = root / "all-garbage"
    d.mkdir()
    for name in ("config.json", "status.json", "lab.json", "events.jsonl", "control.json"):
        (d / name).write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff" * 10)
    d = root / "lab-wrong-types"
    d.mkdir()
    (d / "lab.json").write_text(json.dumps({"owner": 5, "created": "yesterday", "config": "mnist", "twin": ["x"],
                                            "background": "yes", "pid": "1"}))
    (d / "status.json").write_text(json.dumps({"state": "finished", "step": "x"}))


@pytest.fixture(scope="module")
def hostile_root(runs_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    for name in GOOD:
        shutil.copytree(runs_root / name, root / name)
    break_runs(root, runs_root / GOOD[0])
    return root


@pytest.fixture
def hostile_lab(hostile_root, monkeypatch):
    monkeypatch.setenv("HARD_LAB_RUNS", str(hostile_root))
    monkeypatch.setenv("HARD_LAB_MAX_RUNS", "0")  # the pages only read; no queued run starts here
    return hostile_root


def page(name: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query)
    at.run()
    if name != "live":
        at.switch_page(f"views/{name}.py").run()
    assert not at.exception, "\n".join(f"{e.value}\n" + "\n".join(e.stack_trace[-8:]) for e in at.exception)
    return at


def text_of(at: AppTest) -> str:
    return " ".join(str(getattr(e, "value", "")) for e in at.main) + " ".join(str(o) for s in at.selectbox
                                                                            for o in s.options)


def test_the_live_page_draws_its_form_beside_broken_runs(hostile_lab):
    at = page("live")
    assert [b for b in at.sidebar.button if b.label == "Start"]  # the form drew: someone can press Start
    for broken in ("bad-status", "binary-events", "wrong-shape", "garbage-lab", "all-garbage"):
        at = page("live", run=broken)  # opening a broken run shows it (or says it cannot), never a traceback
        assert [b for b in at.sidebar.button if b.label == "Start"], broken


@pytest.mark.parametrize("name", ["compare", "inspector", "explorer", "matrix", "learn"])
def test_every_page_draws_and_lists_the_good_runs(hostile_lab, name):
    at = page(name)
    if name == "compare":
        options = at.multiselect(key="compare_runs").options
        assert all(any(good in o for o in options) for good in GOOD), options
        at.multiselect(key="compare_runs").set_value(options).run()  # every run, broken ones included
        assert not at.exception, [e.value for e in at.exception]
    if name == "inspector":
        options = at.selectbox(key="i_run").options
        assert all(any(o.startswith(good) for o in options) for good in GOOD), options
        for option in options:
            at.selectbox(key="i_run").set_value(option).run()
            assert not at.exception, (option, [e.value for e in at.exception])


def test_the_scheduler_starts_a_queued_run_beside_broken_ones(lab_runs, runs_root):
    from lab import runs as lab
    from lab.scheduler import status

    lab_runs.mkdir(parents=True, exist_ok=True)
    break_runs(lab_runs, runs_root / GOOD[0])
    run_id = lab.submit(RunConfig(dataset="mnist5k", canvas=40, teacher="default", student="mlp", steps=5,
                                  threads=1), owner="me")  # submit ticks the lab's scheduler once
    assert status(lab_runs / run_id)["state"] in ("starting", "running", "finished")
    assert (lab_runs / run_id / "lab.json").stat().st_mode & 0o777 == 0o600  # the owner key: the owner's only
    assert lab.scheduler().queue() == []
    listed = [r["id"] for r in lab.list_all()]
    assert run_id in listed and "binary-events" in listed and "lab-wrong-types" in listed


def test_markdown_from_run_files_is_shown_as_text(hostile_lab):
    """A config's teacher and a status message written as Markdown (a remote image, a link) reach the Live
    page as literal characters: nobody's browser fetches the image."""
    d = hostile_lab / "markdown-run"
    if not d.exists():
        shutil.copytree(hostile_lab / GOOD[0], d)
        saved = json.loads((d / "config.json").read_text())
        saved["config"]["teacher"] = "![x](http://attacker.example/x.png)"
        (d / "config.json").write_text(json.dumps(saved))
        (d / "status.json").write_text(json.dumps({"state": "failed", "step": 20, "total_steps": 20,
                                                   "message": "**bold** [link](http://attacker.example)"}))
    at = page("live", run="markdown-run")
    shown = " ".join(str(e.value) for e in [*at.caption, *at.error])
    assert "](http" not in shown.replace("\\](http", "")  # every link and image is escaped
    assert "!\\[x\\](http://attacker" in shown and "\\*\\*bold\\*\\*" in shown


def test_a_run_address_written_as_markdown_is_shown_as_text(hostile_lab):
    """A link to the lab whose ?run= is Markdown (a remote image) gets one error line with it escaped."""
    at = page("live", run="![x](http://attacker.example/x.png)")
    errors = [str(e.value) for e in at.error]
    assert not at.exception and len(errors) == 1 and "](http" not in errors[0].replace("\\](http", "")
    assert "!\\[x\\](http://attacker" in errors[0]


def test_a_runs_folder_that_is_a_file_is_one_line_on_the_page(tmp_path, monkeypatch):
    from lab import runs

    (tmp_path / "runs").write_text("not a folder")
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "runs"))
    runs.shutdown()
    at = AppTest.from_file(APP, default_timeout=60).run()
    from lab.markdown import md

    expected = md(f"the runs folder {tmp_path / 'runs'} ($HARD_LAB_RUNS) cannot be used: it is a file")
    assert not at.exception and [e.value for e in at.error] == [expected]
    runs.shutdown()


def test_a_malformed_run_limit_is_one_line_on_the_page(tmp_path, monkeypatch):
    from lab import runs
    from lab.markdown import md

    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HARD_LAB_MAX_RUNS", "two")
    runs.shutdown()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and [e.value for e in at.error] == [md("HARD_LAB_MAX_RUNS='two' is not a whole number")]
    runs.shutdown()
