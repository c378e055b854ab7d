"""--precision (autocast dtype, fp16 through GradScaler) and --compile (torch.compile of the teacher's step
passes and the student's training module): resolved as documented, and short real runs on the CPU finish
and record what they ran with."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from hard_core.config import RunConfig
from hard_core.errors import UserError
from hard_core.runs import RunReader, run_to_dir
from hard_core.train.setup import build_session, resolve_precision

CPU, GPU = torch.device("cpu"), torch.device("cuda")
KNOBS = dict(lr=1e-3, temperature=4.0, alpha=1.0, hard_lambda=1.0)


def _config(**kw) -> RunConfig:
    """A tiny run on canvas 28 (the cheapest canvas with a shipped teacher), evaluated and probed only at the end;
    one torch thread (faster for runs this small, and much faster on a busy machine)."""
    steps = kw.pop("steps", 4)
    return RunConfig(**{**dict(dataset="mnist5k", canvas=28, teacher="default", student="mlp", suites="none",
                               device="cpu", steps=steps, batch_size=32, hard_every=2, log_every=1, seed=0, threads=1,
                               eval_every=steps, probe_every=steps, snapshot_every=steps, checkpoint_every=steps),
                       **kw})


def _gpu(monkeypatch, bf16: bool, name: str = "Tesla T4"):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


def test_auto_is_fp32_on_the_cpu_and_explicit_values_are_kept():
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    for value in ("bf16", "fp16", "fp32"):
        assert resolve_precision(value, CPU) == value


def test_auto_picks_bf16_on_gpus_that_have_it_else_fp16(monkeypatch):
    _gpu(monkeypatch, bf16=True, name="NVIDIA H100")
    assert resolve_precision("auto", GPU) == "bf16"
    assert resolve_precision("auto", torch.device("cuda:1")) == "bf16"
    assert resolve_precision("fp16", GPU) == "fp16" and resolve_precision("fp32", GPU) == "fp32"
    _gpu(monkeypatch, bf16=False)
    assert resolve_precision("auto", GPU) == "fp16"
    assert resolve_precision("fp16", GPU) == "fp16" and resolve_precision("fp32", GPU) == "fp32"


def test_bf16_on_a_gpu_without_it_is_one_line(monkeypatch):
    _gpu(monkeypatch, bf16=False, name="Tesla V100-SXM2-16GB")
    with pytest.raises(UserError) as e:
        resolve_precision("bf16", GPU)
    message = str(e.value)
    assert "\n" not in message and "Tesla V100-SXM2-16GB" in message and "--precision fp16" in message


def test_the_config_refuses_an_unknown_precision():
    with pytest.raises(UserError, match="--precision"):
        RunConfig.from_sources(precision="fp8")


def test_fp16_sessions_scale_the_student_and_the_augmentor_separately():
    """fp16: a GradScaler for the student and one for the augmentor's own update (alternate schedule), each
    stepping its own optimizer; the models run in fp16 (CPU autocast), the augmentor in float32. (Both scalers
    start at 2^16 and skip the steps whose scaled gradients overflow: here the student's first two.)"""
    from hard_core.train.step import distil_step

    s = build_session(_config(precision="fp16", hard="affine"))
    assert s.precision == "fp16"
    assert isinstance(s.scaler, torch.amp.GradScaler) and isinstance(s.augmentor_scaler, torch.amp.GradScaler)
    assert s.scaler is not s.augmentor_scaler
    stepped = []

    def spy(name, scaler):
        step = scaler.step

        def counted(optimizer, *args, **kwargs):
            stepped.append((name, optimizer))
            return step(optimizer, *args, **kwargs)
        scaler.step = counted

    spy("student", s.scaler)
    spy("augmentor", s.augmentor_scaler)
    before = [p.detach().clone() for p in s.student.parameters()]
    x, y = s.train.get(torch.arange(32))
    for step in range(1, 5):  # hard_every=2: the augmentor updates at steps 2 and 4
        torch.manual_seed(step)
        out = distil_step(s, x, F.one_hot(y, 10).float(), KNOBS, step=step)
        assert out.student_logits.dtype == torch.float16 and out.x_seen.dtype == torch.float32
        assert math.isfinite(out.loss.item())
    assert [name for name, _ in stepped].count("student") == 4
    assert [o for name, o in stepped if name == "augmentor"] == [s.augmentor_optimizer] * 2
    assert all(o is s.optimizer for name, o in stepped if name == "student")
    assert all(not torch.equal(a, b) for a, b in zip(before, s.student.parameters()))


def test_only_fp16_has_a_scaler():
    for precision in ("bf16", "fp32", "auto"):
        s = build_session(_config(precision=precision, hard="affine"))
        assert s.scaler is None and s.augmentor_scaler is None, precision
    kd = build_session(_config(precision="fp16"))
    assert isinstance(kd.scaler, torch.amp.GradScaler) and kd.augmentor_scaler is None


def _finished(out) -> tuple[dict, list[float]]:
    events = RunReader(out).poll()
    assert [e for e in events if e["kind"] == "status"][-1]["state"] == "finished"
    return json.loads((out / "config.json").read_text()), [e["loss"] for e in events if e["kind"] == "step"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("hard", ["none", "affine"])
def test_a_reduced_precision_run_finishes_on_the_cpu(precision, hard, tmp_path):
    """KD and HARD-affine (alternating schedule, an augmentor update every other step) at fp16 (through the
    GradScaler) and at bf16 run to the end on the CPU, with finite losses, and config.json says which."""
    out = tmp_path / "run"
    run_to_dir(_config(precision=precision, hard=hard, hard_schedule="alternate"), out)
    saved, losses = _finished(out)
    assert saved["precision"] == precision and saved["config"]["precision"] == precision
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses), losses


def test_auto_records_what_it_resolved_to(tmp_path):
    saved, _ = _finished(run_to_dir(_config(steps=1), tmp_path / "run"))
    assert saved["precision"] == "fp32" and saved["config"]["precision"] == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("hard", ["none", "affine"])
def test_a_compiled_run_finishes_on_the_cpu(hard, tmp_path):
    """--compile: the teacher's step passes and the student's training module go through torch.compile
    (inductor, which needs a C compiler: gcc here), and a KD and a HARD-affine run train to the end."""
    cfg = _config(compile=True, hard=hard, steps=3)
    s = build_session(cfg)
    assert s.teacher_step is not s.teacher and s.student_ddp is not s.student  # the compiled wrappers
    assert hasattr(s.teacher_step, "_orig_mod") and s.student_ddp._orig_mod is s.student
    out = tmp_path / "run"
    run_to_dir(cfg, out)
    saved, losses = _finished(out)
    assert saved["config"]["compile"] is True
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses), losses
