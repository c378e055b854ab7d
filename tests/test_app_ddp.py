"""The lab shows a torchrun run like any other: live, read-only, with its world size."""
from pathlib import Path

from streamlit.testing.v1 import AppTest
from test_ddp import ranks, small

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


def test_a_two_rank_run_opens_read_only_with_its_world_size(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("HARD_LAB_RUNS", str(runs_dir))
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in small(steps=10, eval_every=10).items()]
    ranks(["-m", "hard_core", "train", *flags, "--out", str(runs_dir / "ddp-run")])
    from lab import runs

    runs.shutdown()
    try:
        at = AppTest.from_file(ENTRY, default_timeout=60)
        at.query_params.update(run="ddp-run")
        at.run()
        assert not at.exception
        caption = " ".join(c.value for c in at.caption)
        assert "read-only" in caption and "world size 2 (gloo)" in caption, caption
        assert "finished" in " ".join(m.value for m in at.markdown) or at.get("progress"), "no run status shown"
    finally:
        runs.shutdown()
