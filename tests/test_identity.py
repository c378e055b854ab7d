"""Issue 24 class 4: a run records content hashes of its teacher (and VAE); a resume with a replaced teacher
file is refused in one line naming it, and `probe` says which teacher weights it used."""
import json

import pytest

from hard_core.checkpoint import save_model
from hard_core.cli import main
from hard_core.models import build_model
from hard_core.runs import run_to_dir
from hard_core.config import RunConfig
from hard_core.train import Checkpoint
from hard_core.weights import content_hash


def teacher_file(path, seed):
    import torch

    torch.manual_seed(seed)
    model = build_model("mlp", input_shape=(1, 28, 28), num_classes=10)
    save_model(path, model)
    return content_hash(model)


def test_a_swapped_teacher_is_refused_on_resume_and_probe_names_the_weights(tmp_path, capsys):
    original = teacher_file(tmp_path / "T.safetensors", 0)
    cfg = RunConfig(dataset="mnist5k", teacher=str(tmp_path / "T.safetensors"), student="mlp", steps=6,
                    checkpoint_every=2, eval_every=6, suites="none", batch_size=32, threads=1)

    def crash_after_step_2(event):
        if isinstance(event, Checkpoint) and event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_dir(cfg, tmp_path / "R", on_event=crash_after_step_2)
    saved = json.loads((tmp_path / "R" / "config.json").read_text())
    assert saved["identity"] == {"teacher": original}
    (tmp_path / "T.safetensors").rename(tmp_path / "T-original.safetensors")
    other = teacher_file(tmp_path / "T.safetensors", 1)  # same name, other weights
    assert other != original
    before = (tmp_path / "R" / "events.jsonl").read_bytes()
    assert main(["train", "--out", str(tmp_path / "R"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "T.safetensors' is not the one this run trained with" in err[0], err
    assert original in err[0] and other in err[0]
    assert (tmp_path / "R" / "events.jsonl").read_bytes() == before  # a refused resume changes nothing
    (tmp_path / "T-original.safetensors").replace(tmp_path / "T.safetensors")
    assert main(["train", "--out", str(tmp_path / "R"), "--resume"]) == 0
    capsys.readouterr()
    assert main(["probe", str(tmp_path / "R"), "--images", "8"]) == 0
    assert f"teacher weights {original}: the ones the run trained with" in capsys.readouterr().out
    teacher_file(tmp_path / "T.safetensors", 1)
    assert main(["probe", str(tmp_path / "R"), "--images", "8"]) == 0
    assert f"teacher weights {other}: NOT the run's {original}" in capsys.readouterr().out
