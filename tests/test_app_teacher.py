"""A teacher of one's own in the lab: the run form takes a folder or file on the server, checked by the
engine's own rules (one line under the field, Start disabled while it is wrong), names it as the engine
describes it, and the Live page names the teacher of a run trained with a timm model from a Hub folder."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.config import RunConfig
from hard_core.runs import run_to_dir
from lab.markdown import md

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    """A timm model saved as a Hugging Face Hub folder (random weights), for 1 x 32 x 32 inputs, 10 classes."""
    import timm

    folder = tmp_path_factory.mktemp("teachers") / "test-resnet"
    model = timm.create_model("test_resnet", num_classes=10, in_chans=1)
    timm.models.save_for_hf(model, folder, safe_serialization=True,
                            data_config=dict(mean=(0.13,), std=(0.3,), input_size=(1, 32, 32)))
    return folder


def app(**query) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params.update(query)
    return at.run()


def start(at: AppTest):
    return [b for b in at.sidebar.button if b.label == "Start"][0]


def own_teacher(at: AppTest, ref: str) -> AppTest:
    at.sidebar.selectbox(key="f_teacher").set_value("own").run()
    return at.sidebar.text_input(key="f_teacher_path").set_value(ref).run()


def test_the_form_names_the_worlds_shipped_teacher(lab_runs):
    at = app()
    assert not at.exception
    teacher = at.sidebar.selectbox(key="f_teacher")
    assert teacher.options[0] == "the shipped CNN of the shift world (trained on digits moved by up to 6 px)"
    assert teacher.options[-1] == "your own teacher: a folder or file on the server"
    at.sidebar.selectbox(key="f_world").set_value("polarity").run()
    assert at.sidebar.selectbox(key="f_teacher").value == "default"  # the choice survives the new label
    assert at.sidebar.selectbox(key="f_teacher").options[0] == \
        "the shipped CNN of the polarity world (trained on white-on-black and black-on-white digits)"
    assert not at.sidebar.error and not start(at).disabled


def test_a_bad_teacher_path_is_one_line_under_the_field_and_start_is_off(lab_runs, tmp_path):
    at = own_teacher(app(), str(tmp_path / "no-such-teacher"))
    assert not at.exception
    [error] = [e.value for e in at.sidebar.error]
    assert "not found" in error and "\n" not in error, error
    assert start(at).disabled
    (tmp_path / "model.pth").write_bytes(b"\x80\x04 not a model")  # a pickle is refused, never opened
    own_teacher(at, str(tmp_path / "model.pth"))
    assert any("pickle" in e.value for e in at.sidebar.error) and start(at).disabled
    own_teacher(at, "timm:resnet18")  # the CLI would download; the lab takes what is on the server
    assert any("download" in e.value for e in at.sidebar.error) and start(at).disabled
    own_teacher(at, "")
    assert any("name a teacher" in e.value for e in at.sidebar.error) and start(at).disabled
    assert not list(lab_runs.glob("*/lab.json"))  # nothing was started


def test_a_timm_hub_folder_is_accepted_and_described(lab_runs, hub):
    at = own_teacher(app(), str(hub))
    assert not at.exception and not at.sidebar.error
    assert "Teacher: " + md(f"timm test_resnet (32x32 input) from {hub}") in [c.value for c in at.sidebar.caption]
    assert not start(at).disabled
    at.sidebar.toggle(key="f_twin").set_value(False)
    at.sidebar.number_input(key="f_steps").set_value(20)
    start(at).click().run()
    run_id = at.query_params["run"]
    assert json.loads((lab_runs / run_id / "request.json").read_text())["teacher"] == str(hub)
    [b for b in at.button if b.label == "Stop"][0].click().run()


def test_the_live_page_names_a_runs_timm_teacher(lab_runs, hub):
    lab_runs.mkdir(parents=True, exist_ok=True)
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, teacher=str(hub), student="mlp", steps=20, eval_every=10,
                         log_every=5, snapshot_every=10, probe_every=10, suites="shift:4", hard="affine"),
               lab_runs / "cli-timm")
    at = app(run="cli-timm")
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    assert "Teacher: " + md(f"timm test_resnet (32x32 input) from {hub}") in captions, captions  # as text
    metrics = {m.label: m for m in at.metric}
    assert metrics["teacher · shift"].value.endswith("%") and metrics["HARD student · shift"].value.endswith("%")
    assert "timm test_resnet" in metrics["teacher · shift"].proto.help
    assert "finished" in " ".join(p.proto.text for p in at.get("progress"))


def test_resolve_and_the_labs_teacher_folders(tmp_path, monkeypatch):
    from lab import teachers

    monkeypatch.chdir(tmp_path)
    assert teachers.resolve(" t ") == str(tmp_path / "t")
    assert teachers.resolve("timm:resnet18@w.safetensors") == f"timm:resnet18@{tmp_path / 'w.safetensors'}"
    assert teachers.resolve("default") == "default" and teachers.resolve("timm:resnet18") == "timm:resnet18"
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HARD_LAB_TEACHERS", str(tmp_path / "models"))
    assert teachers.lab_refusal(str(tmp_path / "models" / "t")) is None
    assert teachers.lab_refusal(str(tmp_path / "runs" / "pretrain-1")) is None  # the lab's own runs
    assert "outside the folders" in teachers.lab_refusal(str(tmp_path / "models" / ".." / "elsewhere"))
    assert "outside the folders" in teachers.lab_refusal(f"timm:resnet18@{tmp_path / 'w.safetensors'}")
    (tmp_path / "models" / "hub").mkdir(parents=True)
    (tmp_path / "models" / "hub" / "model.safetensors").symlink_to(tmp_path / "w.safetensors")
    (tmp_path / "w.safetensors").write_bytes(b"")
    assert "outside the folders" in teachers.lab_refusal(str(tmp_path / "models" / "hub"))  # a link out of it


def test_the_explorer_names_its_teacher(lab_runs):
    at = app()
    at.switch_page("views/explorer.py").run()
    assert not at.exception
    assert at.button(key="x_rank").label == (
        "Rank the standard augmentations for the shipped CNN of the shift world (trained on digits moved by up to "
        "6 px)")
