"""Issue 24 class 3: config files are parsed with bounds. The alias bomb is refused within a second, every
hostile config gives one short line and leaves no run folder (the table in test_bad_input.py has a row each),
and a refused command does not block the corrected one."""
import time

import pytest

from hard_core.cli import main
from hard_core.config import load_config_file
from hard_core.errors import MAX_MESSAGE, UserError, quote
from test_bad_input import HOSTILE_CONFIGS


def test_the_alias_bomb_is_refused_within_a_second(tmp_path, capsys):
    (tmp_path / "bomb.yaml").write_bytes(HOSTILE_CONFIGS["bomb.yaml"])
    assert len(HOSTILE_CONFIGS["bomb.yaml"]) < 500
    t = time.perf_counter()
    code = main(["train", "--config", str(tmp_path / "bomb.yaml"), "--out", str(tmp_path / "out")])
    assert code == 2 and time.perf_counter() - t < 1.0  # it ran out of memory after 54 s
    assert "anchors and aliases" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(HOSTILE_CONFIGS))
def test_every_hostile_config_is_one_short_line_fast(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(HOSTILE_CONFIGS[name])
    t = time.perf_counter()
    try:
        data = load_config_file(path)
    except UserError as e:
        assert len(str(e)) <= MAX_MESSAGE and "\n" not in str(e)
    else:  # parsed: the values are refused later (by RunConfig or the registries), in one line too
        assert all(isinstance(k, str) for k in data)
    assert time.perf_counter() - t < 2.0


def test_plain_configs_still_load(tmp_path):
    (tmp_path / "c.yaml").write_text("steps: 10\nlr: 0.001\nhard-every: 2\n# a comment: café\n")
    assert load_config_file(tmp_path / "c.yaml") == {"steps": 10, "lr": 0.001, "hard_every": 2}
    (tmp_path / "c.json").write_text('{"steps": 10}')
    assert load_config_file(tmp_path / "c.json") == {"steps": 10}
    (tmp_path / "empty.yaml").write_text("")
    assert load_config_file(tmp_path / "empty.yaml") == {}


def test_messages_quote_at_most_a_hundred_characters():
    assert quote("x" * 10_000) == "'" + "x" * 99 + "..."
    assert quote(10 ** 5000).startswith("<a int too large")  # repr itself would raise
    assert quote("a\nb") == "'a\\nb'"
    message = str(UserError("unknown dataset '" + "y" * 50_000 + "'"))
    assert len(message) <= MAX_MESSAGE and message.startswith("unknown dataset 'yyy") and message.endswith("y'")


def test_a_typo_does_not_block_the_corrected_command(tmp_path, capsys):
    run = ["train", "--canvas", "40", "--teacher", "default", "--student", "mlp", "--steps", "2", "--threads", "1",
           "--eval-every", "2", "--suites", "none", "--out", str(tmp_path / "R")]
    assert main([*run, "--dataset", "mnist5kk"]) == 2  # fails while building the run, after the folder was made
    assert not (tmp_path / "R").exists()
    assert main([*run, "--dataset", "mnist5k"]) == 0
    assert (tmp_path / "R" / "checkpoint.safetensors").is_file()
