"""The Live page's headline (app/lab/headline.py), without Streamlit: the verdict line, the world's suite
and grid, the three maps and the OOD curves; the plain-KD twin's config (hard_core.config.twin_config); and how a live
view holds a figure between redraws (app/lab/live.py)."""
import torch

from hard_core.config import RunConfig, twin_config

from lab import headline

CFG = {"world": "shift", "hard": "affine", "teacher": "default", "steps": 600}


def evals(step, student, teacher=None):
    out = [{"kind": "eval", "step": step, "model": "student", "acc": {"test": 0.95, "shift": student}}]
    if teacher is not None:
        out.insert(0, {"kind": "eval", "step": step, "model": "teacher", "acc": {"test": 0.98, "shift": teacher}})
    return out


def test_the_verdict_names_both_students_and_the_teacher_on_the_worlds_suite():
    run = evals(50, 0.30, teacher=0.981) + evals(100, 0.874)
    twin = evals(50, 0.18) + evals(100, 0.212)
    assert headline.verdict(CFG, run, twin) == "At step 100: HARD student shift 87% (KD twin 21%, teacher 98%)"
    assert headline.verdict(CFG, run, []) == "At step 100: HARD student shift 87% (KD twin not evaluated yet, teacher 98%)"
    assert headline.verdict(CFG, run, None) == "At step 100: HARD student shift 87% (teacher 98%)"  # no twin
    # a twin that lags: both read at its step; one that is ahead: read at the run's
    assert headline.verdict(CFG, run, evals(50, 0.18)).startswith("At step 50: HARD student shift 30% (KD twin 18%")
    assert headline.compared(run[:2], twin, "shift") == (50, 0.30, 0.18, None)
    assert headline.compared(evals(600, 0.9), twin, "shift").twin is None  # no common step: no comparison
    assert headline.verdict({**CFG, "steps": 100}, run, twin).startswith("At step 100 (final):")
    assert headline.ood(None, "shift") is None
    assert "waiting for the first evaluation" in headline.verdict(CFG, [], twin)
    rotation = {**CFG, "world": "rotation"}
    assert headline.world_suite(rotation) == "rotation" and headline.grid_for(rotation) == "rotation"
    assert headline.world_suite({**CFG, "world": "scarce"}) == "test"
    assert headline.run_label({**CFG, "hard": "none", "augment": "shift"}) == "KD + shift student"


def probe(student_value, teacher=True):
    snap = {"invariance.shift.axis.dy": torch.arange(-2, 3.0), "invariance.shift.axis.dx": torch.arange(-2, 3.0),
            "invariance.shift.student.acc": torch.full((5, 5), student_value)}
    if teacher:
        snap["invariance.shift.teacher.acc"] = torch.full((5, 5), 0.98)
    return snap


def test_maps_share_one_accuracy_scale_and_curves_hold_both_students():
    fig = headline.maps_figure(probe(0.9), probe(0.2, teacher=False), "shift", "HARD student")
    heat = {t.name: round(t.z[0][0], 3) for t in fig.data}
    assert heat == {"teacher": 0.98, "KD student (twin)": 0.2, "HARD student": 0.9}
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    waiting = headline.maps_figure(probe(0.9), None, "shift", "HARD student")  # the twin has no map yet
    assert len(waiting.data) == 2
    [note] = [a for a in waiting.layout.annotations if a.text == "no map yet"]
    middle, teacher = waiting.layout.xaxis2.domain, waiting.layout.xaxis.domain  # over the empty twin panel
    assert note.xref == "paper" and middle[0] < note.x < middle[1] and not teacher[0] <= note.x <= teacher[1]
    no_teacher = headline.maps_figure(None, probe(0.2, teacher=False), "shift", "HARD student")
    [note] = [a for a in no_teacher.layout.annotations if a.text == "no map yet"][:1]
    assert note.x < teacher[1]  # the first empty panel is the teacher's (a run not probed yet)
    assert headline.maps_figure(None, None, "shift", "HARD student") is None
    curves = headline.curves_figure(CFG, evals(50, 0.3, teacher=0.98) + evals(100, 0.8), evals(50, 0.2))
    lines = {t.name: list(t.y) for t in curves.data}
    assert lines == {"KD twin": [0.2], "HARD student": [0.3, 0.8]}
    assert headline.curves_figure(CFG, evals(0, 0.98, teacher=0.98)[:1], []) is None  # the page says it waits


def test_the_twin_is_plain_kd_with_the_same_world_seed_and_steps():
    cfg = RunConfig(dataset="mnist5k", canvas=40, teacher="default", world="rotation", hard="affine",
                    affine="rotate", augment="cutmix", hard_lambda=0.5, steps=321, seed=7, lr=3e-3)
    twin = twin_config(cfg)
    assert (twin.hard, twin.augment, twin.affine, twin.hard_lambda) == ("none", "none", "translate", 1.0)
    assert (twin.world, twin.steps, twin.seed, twin.lr, twin.teacher) == ("rotation", 321, 7, 3e-3, "default")
    assert twin_config(twin) is None  # plain KD is its own twin
    assert twin_config(RunConfig(kind="pretrain", loss="ce", dataset="mnist5k")) is None  # no teacher


def test_a_held_figure_waits_until_it_is_old_enough_then_follows_the_latest_version(tmp_path, monkeypatch):
    from lab import live

    clock = [100.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    view, drawings = live.RunView("r", tmp_path), []

    def draw(version):
        return lambda: drawings.append(version) or f"figure {version}"

    assert view.drawn("loss", 1, draw(1), every=24) == "figure 1"
    clock[0] += 10
    assert view.drawn("loss", 2, draw(2), every=24) == "figure 1"  # 10 s old: kept, the browser redraws nothing
    assert view.drawn("loss", 2, draw(2)) == "figure 2"  # not held (a finished run): the latest at once
    clock[0] += 5
    assert view.drawn("loss", 3, draw(3), every=24) == "figure 2"
    clock[0] += 25
    assert view.drawn("loss", 4, draw(4), every=24) == "figure 4"  # old enough: the latest version
    assert view.drawn("params", 9, draw(9), every=24) == "figure 9"  # each name is held on its own
    assert view.drawn("curves", 0, lambda: None, every=24) is None  # before the first evaluation
    assert view.drawn("curves", 1, draw(1), every=24) == "figure 1"  # is not held: the first figure comes at once
    assert drawings == [1, 2, 4, 9, 1]


def test_a_twin_of_the_other_loss_is_named_from_its_own_config():
    """Paper 2's point (KD + flip-crop) against its CE twin: 'CE twin' in the verdict, the curves and the maps'
    label, in-domain test accuracy as the scarce world's measure; a CE run tells no distillation story."""
    kd = RunConfig(dataset="mnist5k", canvas=40, teacher="default", world="scarce", augment="flip-crop", steps=1200)
    cfg, ce = kd.model_dump(mode="json"), twin_config(kd, "loss").model_dump(mode="json")
    scarce = lambda step, acc, teacher=None: [{**e, "acc": {"test": e["acc"]["shift"]}} for e in evals(step, acc, teacher)]
    run, twin = scarce(1200, 0.94, teacher=0.99), scarce(1200, 0.836)
    assert headline.verdict(cfg, run, twin, ce) == "At step 1200 (final): KD + flip-crop student test 94% (CE twin 84%, teacher 99%)"
    assert headline.verdict(cfg, run, twin, twin_config(kd).model_dump(mode="json")).count("KD twin 84%") == 1
    assert headline.twin_name(ce) == "CE twin" and headline.twin_name(None) == "KD twin"
    curves = headline.curves_figure(cfg, run, twin, ce)
    assert [t.name for t in curves.data] == ["CE twin", "KD + flip-crop student"]
    assert curves.layout.title.text == "In domain: test"  # not "Out of domain" for scarce data
    assert headline.measure("shift") == "Out of domain: shift"
    assert headline.run_label(ce) == "CE + flip-crop student"
    assert headline.told(cfg) and not headline.told(ce) and not headline.distilled(ce)  # a CE twin has no maps
    maps = headline.maps_figure(probe(0.9), probe(0.2, teacher=False), "shift", "KD student", twin_label="X (twin)")
    assert [t.name for t in maps.data] == ["teacher", "X (twin)", "KD student"]
