"""Every user error is one line on stderr and exit code 2, never a traceback; help is useful."""
import subprocess
import sys

import pytest

from hard_core.cli import main
from hard_core.checkpoint import save_model
from hard_core.models import build_model


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse errors
        code = e.code
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def shifted_teacher(tmp_path):
    """A (random) teacher checkpoint for 28x28 digits: enough to test shape checks."""
    path = tmp_path / "t28.safetensors"
    save_model(path, build_model("small-cnn", input_shape=(1, 28, 28), num_classes=10))
    return path


BAD = [
    (["train", "--dataset", "imagenet-9000", "--teacher", "x"], "unknown dataset"),
    (["train", "--student", "vit", "--teacher", "{t28}"], "unknown model 'vit'"),
    (["train", "--augment", "sharpen", "--teacher", "{t28}"], "sharpen"),
    (["train", "--steps", "0", "--teacher", "{t28}"], "--steps"),
    (["train", "--steps", "-5", "--teacher", "{t28}"], "--steps"),
    (["train", "--teacher", "{tmp}/missing"], "not found"),
    (["train", "--teacher", "{tmp}/corrupt.safetensors"], "is corrupt"),
    (["train", "--canvas", "40", "--teacher", "{t28}"], "expects inputs (1, 28, 28)"),
    (["train", "--config", "{tmp}/missing.yaml"], "config file not found"),
    (["train", "--config", "{tmp}/bad.yaml"], "cannot parse config"),
    (["train", "--config", "{tmp}/unknown_key.json"], "unknown option 'stepz'"),
    (["train", "--device", "cuda:3", "--teacher", "{t28}"], "cuda"),
    (["eval", "{tmp}/missing"], "not found"),
    (["tstddev", "--dataset", "mnist5k"], "--teacher is required"),
    (["train"], "--teacher is required"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a)[:50] for a, _ in BAD])
def test_user_errors_exit_2_with_one_clear_line(capsys, tmp_path, shifted_teacher, argv, message):
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a checkpoint at all")
    (tmp_path / "bad.yaml").write_text("steps: [1, 2\n")
    (tmp_path / "unknown_key.json").write_text('{"stepz": 3}')
    argv = [a.format(tmp=tmp_path, t28=shifted_teacher) for a in argv]
    code, err = run_cli(capsys, *argv, "--out", str(tmp_path / "run")) if argv[0] == "train" else \
        run_cli(capsys, *argv)
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err


def test_bad_flag_types_are_argparse_errors(capsys):
    code, err = run_cli(capsys, "train", "--steps", "many")
    assert code == 2 and "invalid int value" in err


def test_an_existing_run_is_never_overwritten(capsys, tmp_path, shifted_teacher):
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text('{"kind": "status", "step": 0}\n')
    code, err = run_cli(capsys, "train", "--teacher", str(shifted_teacher), "--out", str(run))
    assert code == 2 and "already holds a run" in err
    assert (run / "events.jsonl").read_text() == '{"kind": "status", "step": 0}\n'


def test_config_file_is_read_and_flags_override_it(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: mnist5k\nloss: ce\nstudent: mlp\nsteps: 4\nbatch-size: 16\nsuites: none\n")
    assert main(["train", "--config", str(cfg), "--steps", "6", "--out", str(tmp_path / "r")]) == 0
    import json

    saved = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert saved["steps"] == 6 and saved["batch_size"] == 16 and saved["suites"] == "none"


def test_each_hard_family_gets_its_own_lambda_unless_one_is_given(tmp_path):
    from hard_core.config import RunConfig, load_config_file

    assert [RunConfig(hard=h).hard_lambda for h in ("none", "affine", "colour", "mix", "vae")] == [1, 1, 1, 0, 0.3]
    assert RunConfig(hard="vae", hard_lambda=2).hard_lambda == 2 and RunConfig(hard="mix", hard_lambda=1).hard_lambda == 1
    (tmp_path / "c.yaml").write_text("hard: vae\n")  # a config file without lambda: the family's, and it is recorded
    cfg = RunConfig.from_sources(tmp_path / "c.yaml")
    assert cfg.hard_lambda == 0.3 and load_config_file(tmp_path / "c.yaml") == {"hard": "vae"}
    assert RunConfig.model_validate(cfg.model_dump()).hard_lambda == 0.3


def test_help_lists_commands_and_flags():
    out = subprocess.run([sys.executable, "-m", "hard_core", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--dataset", "--canvas", "--teacher", "--student", "--augment", "--loss", "--temperature",
                 "--alpha", "--eval-every", "--seed", "--device", "--out", "--config", "[default: 600]"):
        assert flag in out.stdout, flag
    top = subprocess.run([sys.executable, "-m", "hard_core", "--help"], capture_output=True, text=True).stdout
    for cmd in ("train", "pretrain", "eval", "tstddev"):
        assert cmd in top


def test_bench_compares_variants_at_equal_images_per_step(capsys):
    import json

    assert main(["bench", "--variants", "kd,hard-affine,hard-colour", "--rounds", "1", "--steps", "2",
                 "--batch-size", "32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["ratio_to_kd"]) == {"hard-affine", "hard-colour"} and all(v > 0 for v in out["ratio_to_kd"].values())
    for name, ms in out["ms_per_step"].items():  # images/s is the batch over the time per step
        assert out["images_per_s"][name] == pytest.approx(32 / (ms / 1000), rel=0.01)


def test_device_is_declared_once():
    """Every command's --device is RunConfig's field: one help text; where there is no --config, its default."""
    import argparse

    from hard_core.cli import parser
    from hard_core.config import RunConfig

    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    helps = {name: a.help for name, p in commands.items() for a in p._actions if "--device" in a.option_strings}
    assert set(helps) >= {"train", "pretrain", "eval", "tstddev", "bench", "matrix", "probe"}
    assert len(set(helps.values())) == 1, helps
    for name in ("bench", "matrix", "probe"):
        assert commands[name].get_default("device") == RunConfig.model_fields["device"].default


def test_compare_reach_names_the_first_step_at_the_target_or_not_reached(tmp_path, capsys):
    """`compare --reach test`: the first evaluated step at which each student reaches the first run's final
    accuracy (step 0 counts), else "not reached in N steps" with N the run's own last evaluated step."""
    import json
    import shutil

    from hard_core.config import RunConfig
    from hard_core.runs import run_to_dir

    a = run_to_dir(RunConfig(dataset="mnist5k", canvas=28, loss="ce", student="mlp", steps=20, eval_every=5,
                             batch_size=32, suites="none", threads=1), tmp_path / "a")
    events = [json.loads(line) for line in (a / "events.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["kind"] == "eval" and e["model"] == "student"]
    first = next(e["step"] for e in evals if e["acc"]["test"] >= evals[-1]["acc"]["test"])
    worse = lambda e: {**e, "acc": {k: v / 2 for k, v in e["acc"].items()}} if e in evals else e  # never gets there
    at_once = lambda e: {**e, "step": 0, "acc": {k: 1.0 for k in e["acc"]}} if e is evals[0] else e  # perfect at 0
    for name, change in (("worse", worse), ("at-once", at_once)):
        shutil.copytree(a, tmp_path / name)
        (tmp_path / name / "events.jsonl").write_text("".join(json.dumps(change(e)) + "\n" for e in events))
    assert main(["compare", str(a), str(tmp_path / "worse"), str(tmp_path / "at-once"), "--reach", "test"]) == 0
    out = capsys.readouterr().out
    assert f"  a: step {first}\n" in out and "  worse: not reached in 20 steps\n" in out
    assert "  at-once: step 0\n" in out
