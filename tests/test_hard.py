"""HARD: augmentors start as the identity, stay in bounds, ascend the disagreement, and beat KD on shifts."""
import pytest
import torch

from hard_core.augment.hard import build_augmentor, reverse_grad
from hard_core.augment.hard.affine import warp
from hard_core.checkpoint import load_model
from hard_core.assets import shipped_teacher
from hard_core.errors import UserError
from hard_core.losses import hard_loss, kl_div
from hard_core.models import build_model
from hard_core.runs import RunReader, run_to_dir
from hard_core.config import RunConfig
from hard_core.data import load_dataset


FAMILIES = [("affine", (1, 40, 40)), ("affine", (1, 40)), ("colour", (1, 40, 40)), ("colour", (3, 32, 32)),
            ("colour", (1, 40)), ("mix", (1, 40, 40)), ("mix", (3, 32, 32)), ("mix", (1, 40)),
            ("vae", (1, 40, 40)), ("vae", (1, 28, 28))]


@pytest.mark.parametrize("name,shape", FAMILIES)
def test_augmentors_are_the_identity_with_spread_zero_and_start_wide(name, shape):
    torch.manual_seed(0)
    x = torch.rand(6, *shape)
    x_aug, params = build_augmentor(name, input_shape=shape, spread=0.0)(x)
    assert torch.allclose(x_aug, x, atol=1e-5)
    assert all(v.shape[0] == 6 for v in params.values())
    wide, _ = build_augmentor(name, input_shape=shape)(x)  # the default spread explores from the start
    assert (wide - x).abs().mean() > 1e-3


def test_affine_bounds_hold_for_any_weights():
    aug = build_augmentor("affine", input_shape=(1, 40, 40), dof="translate:3,rotate:20,scale:0.1,shear:0.2")
    with torch.no_grad():
        for p in aug.parameters():
            p.normal_(0, 5)  # far from init: raw outputs large
    _, params = aug(torch.rand(256, 1, 40, 40))
    assert params["tx"].abs().max() <= 3 + 1e-5 and params["ty"].abs().max() <= 3 + 1e-5
    assert params["rotate"].abs().max() <= 20 + 1e-4
    assert params["scale"].abs().max() <= 0.1 + 1e-6 and params["shear"].abs().max() <= 0.2 + 1e-6
    assert params["tx"].std() > 0.5  # noise-driven: samples differ


def test_colour_stays_in_range_and_reaches_the_full_inversion():
    aug = build_augmentor("colour", input_shape=(3, 16, 16))
    x = torch.rand(64, 3, 16, 16)
    with torch.no_grad():
        for p in aug.parameters():
            p.normal_(0, 5)
    aug.project_()
    x_aug, params = aug(x)
    assert x_aug.min() >= 0 and x_aug.max() <= 1
    assert params["gain"].abs().max() <= 1 + 1e-6 and params["gain"].std() > 0.1
    inverse = build_augmentor("colour", input_shape=(3, 16, 16), spread=0.0)
    with torch.no_grad():
        inverse.net[-1].bias.fill_(torch.pi)  # both ends at r = pi: black -> 1, white -> 0
    assert torch.allclose(inverse(x)[0], 1 - x, atol=1e-6)


def test_spread_is_learned_but_kept_in_bounds():
    aug = build_augmentor("affine", input_shape=(1, 40, 40))
    assert aug.spread.requires_grad and aug.spread.item() == 1.0
    with torch.no_grad():
        aug.spread.fill_(-3.0)
    aug.project_()
    assert aug.spread.item() == 0.0
    with pytest.raises(ValueError, match="spread"):
        build_augmentor("mix", input_shape=(1, 40, 40), spread=-1.0)


def test_vae_edits_stay_within_eps():
    aug = build_augmentor("vae", input_shape=(1, 40, 40), spread=4.0)
    z = torch.randn(8, 4, 10, 10)
    assert aug.sample_delta(z).abs().max() <= aug.eps + 1e-6


def test_warp_moves_content_by_the_requested_pixels():
    x = torch.zeros(1, 1, 40, 40)
    x[0, 0, 20, 20] = 1.0
    out = warp(x, {"tx": torch.tensor([3.0]), "ty": torch.tensor([-2.0])})
    assert out[0, 0].argmax().item() == 18 * 40 + 23  # row 20-2, column 20+3


def test_mix_weights_stay_in_bounds_for_any_weights():
    """Whatever the mask network says, each pixel mixes at most max_weight of the partner in: x_aug stays
    between the image and its partner."""
    aug = build_augmentor("mix", input_shape=(1, 40, 40))
    with torch.no_grad():
        for p in aug.parameters():
            p.normal_(0, 10)
    x = torch.rand(8, 1, 40, 40)
    torch.manual_seed(3)
    x_aug, params = aug(x)
    partner = x[params["partner"]]
    assert 0 < params["weight"].max() <= aug.max_weight + 1e-6 and params["weight"].min() >= 0
    lo, hi = torch.minimum(x, partner), torch.maximum(x, partner)
    assert ((x_aug >= lo - 1e-6) & (x_aug <= hi + 1e-6)).all()
    assert ((x_aug - x).abs() <= aug.max_weight * (partner - x).abs() + 1e-6).all()


def test_bad_affine_spec_is_a_user_error():
    with pytest.raises(UserError, match="unknown affine degree"):
        build_augmentor("affine", input_shape=(1, 40, 40), dof="wobble")
    with pytest.raises(UserError, match="1D signals only take"):
        build_augmentor("affine", input_shape=(1, 40), dof="rotate")
    with pytest.raises(UserError, match="unknown HARD augmentor"):
        build_augmentor("warp", input_shape=(1, 40, 40))


@pytest.mark.parametrize("name,lr", [("affine", 1e-3), ("mix", 1e-2), ("vae", 1e-2)])
def test_augmentor_steps_raise_the_disagreement(name, lr):
    """The objective has the right sign: through reverse_grad, descending L makes the augmentor ascend
    KL(T(x_aug) || S(x_aug)) on a fixed batch (fixed noise), the student untouched. Plain SGD steps from
    a generic (randomly perturbed) augmentor, not the identity: bilinear warps have a kink exactly at
    zero shift, so the first-order claim holds away from it."""
    torch.manual_seed(0)
    teacher = load_model(shipped_teacher("mnist5k", 40)).eval()
    student = build_model("mlp", input_shape=(1, 40, 40), num_classes=10).eval()
    x = load_dataset("mnist5k", canvas=40).test.get(slice(0, 64))[0]
    aug = build_augmentor(name, input_shape=(1, 40, 40))
    with torch.no_grad():
        for p in aug.parameters():
            p.add_(0.1 * torch.randn_like(p))
    aug.project_()
    opt = torch.optim.SGD(aug.parameters(), lr=lr)

    def disagreement():
        torch.manual_seed(1)
        with torch.no_grad():
            x_aug, _ = aug(x)
            return kl_div(teacher(x_aug), student(x_aug), 4.0).item()

    seen = [disagreement()]
    for _ in range(3):
        torch.manual_seed(1)
        x_aug, _ = aug(x)
        x_in = reverse_grad(x_aug)
        with torch.no_grad():
            t_clean = teacher(x)
        loss, _ = hard_loss(student(torch.cat([x, x_in])), t_clean, teacher(x_in), t_clean, None, 4.0, 1.0, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        aug.project_()
        seen.append(disagreement())
    assert all(b > a for a, b in zip(seen, seen[1:])), seen


# (world, HARD config, steps, how far HARD must beat KD on the world's suite): short, seeded runs
LEARNING = [("shift", {"hard": "affine"}, 300, 0.25),
            ("rotation", {"hard": "affine", "affine": "rotate"}, 300, 0.05),
            ("polarity", {"hard": "colour"}, 300, 0.25),
            ("scarce", {"hard": "mix"}, 600, 0.02),  # scarce: the suite is in-domain test accuracy
            ("scarce", {"hard": "vae"}, 400, 0.02)]


@pytest.mark.slow
@pytest.mark.parametrize("world,hard,steps,margin", LEARNING, ids=[f"{h['hard']}-{w}" for w, h, *_ in LEARNING])
def test_a_short_hard_run_beats_kd_on_its_world(world, hard, steps, margin, tmp_path):
    from hard_core.worlds import get_world

    w = get_world(world)
    common = dict(dataset="mnist5k", canvas=40, teacher="default", student="mlp", world=world, steps=steps,
                  eval_every=steps, suites="none" if w.suite == "test" else f"{w.suite}:{w.strength or 6}",
                  seed=0, snapshot_every=steps,
                  probe_every=steps)
    run_to_dir(RunConfig(**common), tmp_path / "kd")
    run_to_dir(RunConfig(**hard, **common), tmp_path / "hard")

    def final(d):
        return [e for e in RunReader(d).poll() if e["kind"] == "eval" and e["model"] == "student"][-1]["acc"]

    kd, hard = final(tmp_path / "kd"), final(tmp_path / "hard")
    assert hard[w.suite] > kd[w.suite] + margin, (kd, hard)
    assert hard["test"] > kd["test"] - 0.03, (kd, hard)


def test_the_augmentor_plays_in_float32_under_bf16_autocast(monkeypatch):
    """On CUDA the models run under bf16 autocast; the augmentor must not (in bf16 its game died: every
    sample got the same shift and its gradients went to exactly 0). Emulated here with CPU autocast."""
    import contextlib

    import torch.nn.functional as F

    from hard_core.train import setup
    from hard_core.train.step import distil_step

    monkeypatch.setattr(setup.Session, "autocast", property(
        lambda self: torch.autocast("cpu", dtype=torch.bfloat16) if self.cfg.hard != "none" else contextlib.nullcontext()))
    s = setup.build_session(RunConfig(dataset="mnist5k", canvas=40, teacher="default", student="mlp", hard="affine",
                                      suites="none", batch_size=32, hard_every=1))
    x, y = s.train.get(torch.arange(32))
    knobs = dict(lr=1e-3, temperature=4.0, alpha=1.0, hard_lambda=1.0)
    out = distil_step(s, x, F.one_hot(y, 10).float(), knobs, step=1)
    assert out.student_logits.dtype == torch.bfloat16  # the models did run in bf16...
    assert out.params["tx"].dtype == torch.float32 and out.x_seen.dtype == torch.float32  # ...the augmentor not
    assert s.augmentor.net[-1].weight.grad.abs().sum() > 0


def _session(**kw):
    from hard_core.train.setup import build_session

    return build_session(RunConfig(dataset="mnist5k", canvas=40, teacher="default", student="mlp", suites="none",
                                   batch_size=64, **kw))


@pytest.mark.parametrize("schedule,family", [("reverse", "affine"), ("alternate", "affine"), ("alternate", "colour")])
def test_no_sampled_image_is_discarded(schedule, family):
    """The student sees every image of the batch once: the clean part as it is, the rest augmented (colour
    draws 4 candidates per image and keeps one of them)."""
    import torch.nn.functional as F

    from hard_core.train.step import distil_step

    s = _session(hard=family, hard_schedule=schedule)
    seen = []
    s.student.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    x, y = s.train.get(torch.arange(64))
    out = distil_step(s, x, F.one_hot(y, 10).float(), dict(lr=1e-3, temperature=4.0, alpha=1.0, hard_lambda=1.0), 1)
    student_batch = seen[-1]  # the student's training pass (the alternating update's pass comes before it)
    c = 64 - round(s.augmentor.share * 64)  # affine augments 3/4 of the batch, colour 0.4 of it
    assert student_batch.shape[0] == 64 and c == {"affine": 16, "colour": 38}[family]
    assert torch.equal(student_batch[:c], x[:c]) and torch.equal(out.x, x[c:])
    assert torch.equal(student_batch[c:], out.x_seen) and not torch.equal(out.x_seen, x[c:])


def test_candidate_draws_keep_each_images_highest_scoring_augmentation():
    """With k candidates per image, the draw keeps for every image the candidate that scores highest on
    the augmentor's objective, and hands back the teacher's outputs on exactly the kept images."""
    from hard_core.losses import augmentor_objective
    from hard_core.train.step import _draw

    s = _session(hard="colour", hard_candidates=3)
    x = s.train.get(torch.arange(16))[0]
    knobs = dict(temperature=4.0, hard_lambda=1.0)
    with torch.no_grad():
        t_src = s.teacher(x)
    torch.manual_seed(3)
    x_aug, params, t_aug = _draw(s, x, t_src, knobs, grad=False)
    torch.manual_seed(3)
    with torch.no_grad():
        every, _ = s.augmentor(x.repeat(3, 1, 1, 1))
        score = augmentor_objective(s.teacher(every), s.student(every), t_src.repeat(3, 1), 4.0, 1.0, "none")
    best = score.view(3, 16).argmax(0)
    assert torch.equal(x_aug, every.view(3, 16, *x.shape[1:])[best, torch.arange(16)])
    assert (best > 0).any()  # not simply the first draw
    assert torch.allclose(t_aug, s.teacher(x_aug), atol=1e-5) and params["gain"].shape == (16,)


@pytest.fixture(scope="module")
def kd_student(tmp_path_factory):
    """A student distilled on plain digits: the one the augmentor must find hard examples for."""
    out = tmp_path_factory.mktemp("kd") / "kd"
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, teacher="default", student="mlp", steps=150, suites="none",
                         eval_every=150, snapshot_every=150, probe_every=150, seed=0), out)
    return out / "checkpoint.safetensors"


@pytest.mark.parametrize("family,world,lam", [("affine", "shift", 1.0), ("colour", "polarity", 1.0),
                                              ("mix", "scarce", 0.1), ("vae", "thickness", 1.0)])
@pytest.mark.parametrize("schedule", ["reverse", "alternate"])
def test_augmentor_updates_raise_the_hardness(family, world, lam, schedule, kd_student):
    """With lambda > 0 (the consistency term's sign counts too) and the student held still (lr 0), a few
    real HARD steps on one fixed batch make the augmentor's samples harder for a KD-trained student."""
    import torch.nn.functional as F

    from hard_core.checkpoint import load_into
    from hard_core.losses import game_metrics
    from hard_core.train.step import distil_step

    s = _session(hard=family, world=world, hard_schedule=schedule, hard_lr=3e-2, hard_spread=0.3, hard_every=1)
    load_into(s.student, kd_student)
    for group in s.optimizer.param_groups:
        group["lr"] = 0.0
    x, y = s.train.get(torch.arange(64))
    y = F.one_hot(y, 10).float()
    knobs = dict(lr=0.0, temperature=4.0, alpha=1.0, hard_lambda=lam)

    def hardness():  # over four draws per image: one draw of 64 boxes or shifts is a noisy estimate
        torch.manual_seed(7)
        with torch.no_grad():
            xs = x.repeat(4, 1, 1, 1)
            x_aug, _ = s.augmentor(xs)
            metrics = game_metrics(s.teacher(xs), s.student(xs), s.teacher(x_aug), s.student(x_aug), 4.0)
            return metrics["hardness"].item()

    before = hardness()
    for step in range(1, 11):
        torch.manual_seed(step)
        distil_step(s, x, y, knobs, step)
    assert hardness() > before * 1.05, (before, hardness())


@pytest.mark.parametrize("family", ["affine", "mix"])
def test_reverse_and_alternate_give_the_augmentor_one_direction_at_alpha_half(family):
    """The augmentor's objective holds no label term and no alpha in either schedule: at alpha 0.5, with the
    same batch, draw and initial weights, the augmentor's gradient from one `reverse` step (the whole loss
    behind the gradient reversal) points where the `alternate` schedule's own objective does."""
    import torch.nn.functional as F

    from hard_core.train.step import distil_step

    grads, state = {}, None
    for schedule in ("reverse", "alternate"):
        s = _session(hard=family, hard_schedule=schedule, hard_every=1, hard_lambda=1.0)
        if state is None:  # a generic augmentor (not the zero-initialised identity): every layer gets a gradient
            torch.manual_seed(0)
            with torch.no_grad():
                for p in s.augmentor.net.parameters():
                    p.add_(0.1 * torch.randn_like(p))
            state = [{k: v.clone() for k, v in m.state_dict().items()} for m in (s.student, s.augmentor)]
        s.student.load_state_dict(state[0])
        s.augmentor.load_state_dict(state[1])
        x, y = s.train.get(torch.arange(64))
        torch.manual_seed(5)  # the same draw in both schedules
        distil_step(s, x, F.one_hot(y, 10).float(), dict(lr=1e-3, temperature=4.0, alpha=0.5, hard_lambda=1.0), 1)
        grads[schedule] = torch.cat([p.grad.flatten() for p in s.augmentor.parameters() if p.grad is not None])
    cosine = F.cosine_similarity(grads["reverse"], grads["alternate"], dim=0).item()
    assert cosine > 0.999, cosine  # before the fix: 0.98 (affine) and 0.98 (mix)
