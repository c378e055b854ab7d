"""T. stddev: the definition recomputed in numpy (per batch and per chunk of batches), ordering of
augmentations, seeding, views, the bootstrap interval, tied ranks and the collapse flag; the `tstddev`
command; its validation against students' test loss (Spearman / Pearson, `tstddev --validate`)."""
import fcntl
import json
import threading

import numpy as np
import pytest
import torch
from torch import nn

from hard_core.augment import AUGMENTATIONS, build_augment
from hard_core.cli import main
from hard_core.probes.tstddev import (COLLAPSE, Score, batch_indices, bootstrap, chunks_for, estimate,
                                      rank_augmentations, ranked, t_stddev, tied)
from hard_core.runs.validate import average_ranks, pearson, spearman

K = 3


class MeanTeacher(nn.Module):
    """Logits = w * (mean pixel value) + b."""

    w = torch.tensor([4.0, 0.0, -4.0])
    b = torch.tensor([0.0, 0.5, 1.0])

    def forward(self, x):
        return x.flatten(1).mean(1, keepdim=True) * self.w + self.b


class CentreTeacher(nn.Module):
    """Confident class 0 if the centre pixel is bright, else class 1."""

    def forward(self, x):
        c = x[:, 0, x.shape[2] // 2, x.shape[3] // 2][:, None]
        return torch.cat([8 * c, 8 * (1 - c), torch.zeros_like(c)], 1)


def constant_images(n=50, seed=0):
    vals = torch.rand(n, generator=torch.Generator().manual_seed(seed))
    return vals.view(n, 1, 1, 1).expand(n, 1, 8, 8).contiguous(), vals.numpy().astype(np.float64)


def test_batch_indices_are_a_seeded_shuffled_pass():
    idx = batch_indices(50, batches=7, batch_size=16, seed=3)
    assert idx.shape == (7, 16) and idx.min() >= 0 and idx.max() < 50
    for p in range(0, 6, 3):  # 3 batches per pass of 50 images (drop_last): no repeats inside a pass
        assert len(set(idx[p:p + 3].flatten().tolist())) == 48
    assert torch.equal(idx, batch_indices(50, batches=7, batch_size=16, seed=3))
    assert not torch.equal(idx, batch_indices(50, batches=7, batch_size=16, seed=4))


@pytest.mark.parametrize("temperature,chunk_batches", [(1.0, 1), (2.5, 1), (1.0, 3)])
def test_matches_numpy_definition_with_no_augmentation(temperature, chunk_batches):
    x, vals = constant_images()
    got = t_stddev(MeanTeacher(), x, build_augment("none", num_classes=K), chunks=7, chunk_batches=chunk_batches,
                   batch_size=16, temperature=temperature, seed=3)
    idx = batch_indices(50, 7 * chunk_batches, 16, 3).numpy().reshape(7, chunk_batches * 16)  # over epochs
    logits = (vals[idx][..., None] * MeanTeacher.w.numpy() + MeanTeacher.b.numpy()) / temperature
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # chunks x images of the chunk x K
    expected = p.mean(1).std(0, ddof=1).mean()  # Bessel-corrected std over chunks, mean over classes
    assert got == pytest.approx(expected, rel=1e-5)


def test_chunks_for_is_ten_epochs_of_the_papers_chunks():
    assert chunks_for(4000) == 10 * (4000 // 64) // 10 == 62
    assert chunks_for(50, chunk_batches=10, batch_size=64) == 2  # never fewer than two


def test_full_batches_of_the_same_images_give_zero():
    x, _ = constant_images(32)
    none = build_augment("none", num_classes=K)
    assert t_stddev(MeanTeacher(), x, none, chunks=5, chunk_batches=2, batch_size=32) < 1e-6


def test_augmentation_that_changes_teacher_more_scores_higher():
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0  # identical images: without augmentation every batch mean is the same
    teacher = CentreTeacher()
    kw = dict(chunks=10, chunk_batches=1, batch_size=32)
    none = t_stddev(teacher, x, build_augment("none", num_classes=K), **kw)
    shift = t_stddev(teacher, x, build_augment("shift", num_classes=K, max_shift=2), **kw)
    assert none < 1e-6 < 0.01 < shift


def test_seeded_and_restores_global_rng():
    x = torch.rand(100, 1, 10, 10)
    aug = build_augment("shift", num_classes=K, max_shift=3)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    kw = dict(chunks=5, chunk_batches=2, batch_size=20)
    a = t_stddev(MeanTeacher(), x, aug, seed=7, **kw)
    assert torch.equal(torch.rand(3), before)  # the caller's random stream is untouched
    assert a == t_stddev(MeanTeacher(), x, aug, seed=7, **kw)
    assert a != t_stddev(MeanTeacher(), x, aug, seed=8, **kw)


def test_label_mixing_uses_given_or_teacher_labels():
    x = torch.rand(40, 1, 8, 8)
    for name in ("mixup", "cutmix", "cutmixpick"):
        aug = build_augment(name, num_classes=K, criterion="teacher-entropy")
        assert t_stddev(MeanTeacher(), x, aug, chunks=3, chunk_batches=1, batch_size=10) >= 0
        assert t_stddev(MeanTeacher(), x, aug, chunks=3, chunk_batches=2, batch_size=10,
                        y=torch.randint(K, (40,))) >= 0
    with pytest.raises(ValueError, match="chunks"):
        t_stddev(MeanTeacher(), x, build_augment("none", num_classes=K), chunks=1)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 24)], ids=["image", "1d"])
def test_rank_is_sorted_ascending_and_skips_image_only_on_1d(shape):
    x = torch.rand(48, *shape)
    ranking = rank_augmentations(MeanTeacher(), x, num_classes=K, chunks=3, chunk_batches=1, batch_size=16, seed=1)
    readable = [s.t_stddev for s in ranking if not s.collapsed]
    assert readable == sorted(readable) and all(s.rank is None for s in ranking if s.collapsed)
    names = {s.name for s in ranking}
    if len(shape) == 3:
        assert names == set(AUGMENTATIONS)
    else:
        assert names == {"none", "shift", "mixup", "cutmix", "cutmixpick"}
    assert ranking == rank_augmentations(MeanTeacher(), x, num_classes=K, chunks=3, chunk_batches=1, batch_size=16,
                                         seed=1)


def test_views_original_plus_augmented_averages_in_the_originals():
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0  # identical images: the originals' mean is the same in every batch
    teacher, kw = CentreTeacher(), dict(chunks=10, chunk_batches=1, batch_size=32, seed=2)
    shift = build_augment("shift", num_classes=K, max_shift=2)
    aug = t_stddev(teacher, x, shift, **kw)
    both = t_stddev(teacher, x, shift, views="original+augmented", **kw)
    # each batch mean becomes (constant + augmented mean) / 2, so the spread over batches halves exactly
    assert both == pytest.approx(aug / 2, rel=1e-5) and both > 0.005
    x, _ = constant_images()
    none = build_augment("none", num_classes=K)
    assert t_stddev(MeanTeacher(), x, none, chunks=5, batch_size=16, views="original+augmented") == \
        pytest.approx(t_stddev(MeanTeacher(), x, none, chunks=5, batch_size=16), rel=1e-6)
    with pytest.raises(ValueError, match="views"):
        t_stddev(MeanTeacher(), x, none, views="clean")


def test_rank_passes_views_through():
    x = torch.rand(48, 1, 8, 8)
    kw = dict(num_classes=K, chunks=3, chunk_batches=1, batch_size=16, seed=1)
    aug = {s.name: s.t_stddev for s in rank_augmentations(MeanTeacher(), x, ["none", "cutout"], **kw)}
    both = {s.name: s.t_stddev for s in rank_augmentations(MeanTeacher(), x, ["none", "cutout"],
                                                            views="original+augmented", **kw)}
    assert both["none"] == pytest.approx(aug["none"], rel=1e-4) and both["cutout"] != aug["cutout"]


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_chunks():
    g = torch.Generator().manual_seed(0)
    few, many = torch.rand(8, K, generator=g), torch.rand(200, K, generator=g)
    for means in (few, many):
        low, high = bootstrap(means)
        s = float(means.std(0).mean())
        assert low < s < high and bootstrap(means) == (low, high)  # seeded
    assert np.subtract(*bootstrap(many)[::-1]) < np.subtract(*bootstrap(few)[::-1]) / 2
    x = torch.rand(200, 1, 8, 8)
    sc = estimate(MeanTeacher(), x, build_augment("cutout", num_classes=K), chunks=6, chunk_batches=2, batch_size=10)
    assert sc.low < sc.t_stddev < sc.high and sc.chunks == 6 and sc.name == "cutout"


def score(name, t, half=0.001, acc=0.9, clean=0.9):
    return Score(name, t, t - half, t + half, acc, clean, 10)


def test_ranks_count_only_clear_differences_and_mark_ties():
    got = ranked([score("c", 0.0105), score("a", 0.010), score("b", 0.0125), score("d", 0.020)])
    assert [(s.name, s.rank) for s in got] == [("a", 1), ("c", 1), ("b", 2), ("d", 4)]
    # b (0.0115-0.0135) touches c (0.0095-0.0115) but lies wholly above a (0.009-0.011): one clearly better, rank 2
    assert tied(got, got[0]) == ["c"] and tied(got, got[2]) == [] and tied(got, got[3]) == []


def test_a_collapsed_augmentation_is_flagged_listed_last_and_never_ranked():
    assert score("p", 0.001, acc=COLLAPSE * 0.9 - 0.01).collapsed and not score("q", 0.001, acc=0.46).collapsed
    got = ranked([score("a", 0.010), score("p", 0.001, acc=0.12, clean=0.98)])
    assert [s.name for s in got] == ["a", "p"] and got[0].rank == 1 and got[1].rank is None


class BrightTeacher(nn.Module):
    """Reads a bright digit on a dark page (class 0 if the image is mostly dark, else class 1, confidently)."""

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([20 * (0.5 - m), 20 * (m - 0.5), torch.zeros_like(m)], 1)


def test_the_teacher_accuracy_on_changed_views_flags_polarity_for_a_teacher_that_cannot_read_it():
    x = torch.rand(64, 1, 8, 8) * 0.3  # dark images, all class 0, which the teacher reads
    y = torch.zeros(64, dtype=torch.long)
    kw = dict(chunks=4, chunk_batches=1, batch_size=16, y=y)
    polarity = estimate(BrightTeacher(), x, build_augment("polarity", num_classes=K), **kw)
    assert polarity.clean_accuracy == 1.0 and polarity.accuracy == 0.0 and polarity.collapsed  # inverted: misread
    none = estimate(BrightTeacher(), x, build_augment("none", num_classes=K), **kw)
    assert none.accuracy == 1.0 and not none.collapsed  # nothing changed: the clean views
    ranking = rank_augmentations(BrightTeacher(), x, ["none", "polarity"], num_classes=K, **kw)
    assert [(s.name, s.rank) for s in ranking] == [("none", 1), ("polarity", None)]


def test_tstddev_command_prints_intervals_accuracy_ties_and_the_collapse(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_CACHE", str(tmp_path / "cache"))
    argv = ["tstddev", "--dataset", "mnist5k", "--canvas", "28", "--teacher", "default", "--augment",
            "none,shift,polarity", "--chunks", "3", "--chunk-batches", "2", "--batch-size", "32", "--json"]
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    lines = {line.split()[1]: line for line in out.splitlines()
             if line.split()[1:2] in (["none"], ["shift"], ["polarity"])}
    assert "COLLAPSED" in lines["polarity"] and lines["polarity"].split()[0] == "-"
    assert "COLLAPSED" not in lines["none"] and "3 chunks of 2 batches of 32" in out and "computed in" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert [r["name"] for r in result["ranking"]][-1] == "polarity" and result["ranking"][-1]["collapsed"]
    for r in result["ranking"]:
        assert r["low"] <= r["t_stddev"] <= r["high"] and 0 <= r["accuracy"] <= 1
    code, again, err = cli(capsys, *argv)  # kept: read back, the same numbers
    assert code == 0 and "read back from" in again and json.loads(again.strip().splitlines()[-1])["ranking"] == \
        result["ranking"]


def test_spearman_and_pearson_on_known_inputs():
    np.testing.assert_allclose(average_ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_allclose(average_ranks([5, 5, 5]), [2, 2, 2])
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([3, 1, 4, 2, 5], [2, 1, 5, 3, 4]) == pytest.approx(1 - 6 * 4 / (5 * 24))  # no ties: 0.8
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))  # tied ranks 2.5
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    assert spearman([1, 1, 1], [1, 2, 3]) is None and pearson([1], [2]) is None


def cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


TINY = ["tstddev", "--validate", "--dataset", "mnist5k", "--canvas", "28", "--teacher", "default",
        "--augment", "none,shift", "--steps", "10", "--chunks", "2", "--chunk-batches", "1", "--batch-size", "32"]


def test_validate_trains_scores_correlates_and_reuses(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "v"
    code, stdout, err = cli(capsys, *TINY, "--seeds", "1", "--out", str(out), "--json")
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result == json.loads((out / "validate.json").read_text())
    assert {"views", "steps", "seeds", "rows", "spearman", "pearson", "runs", "t_stddev"} <= set(result)
    assert result["views"] == "original+augmented" and result["runs"]["trained"] == 2 and result["complete"]
    assert set(result["t_stddev"]["0"]) == {"none", "shift"} and len(result["spearman_by_seed"]) == 1
    assert {r["augment"] for r in result["rows"]} == {"none", "shift"}
    for row in result["rows"]:
        assert {"t_stddev", "t_stddev_by_seed", "interval", "teacher_acc", "collapsed", "test_loss_mean",
                "test_loss_std", "test_acc_mean"} <= set(row)
        assert row["test_loss_mean"] > 0 and 0 <= row["test_acc_mean"] <= 1
    assert -1 <= result["spearman"] <= 1 and -1 <= result["pearson"] <= 1
    assert "Spearman" in stdout and (out / "shift-s0" / "checkpoint.safetensors").is_file()
    code, stdout, err = cli(capsys, *TINY, "--seeds", "1", "--out", str(out), "--json")
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1])["runs"]["reused"] == 2, err
    status = json.loads((out / "none-s0" / "status.json").read_text())
    (out / "none-s0" / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    code, stdout, err = cli(capsys, *TINY, "--seeds", "1", "--out", str(out), "--json")
    runs = json.loads(stdout.strip().splitlines()[-1])["runs"]
    assert code == 0 and runs == {"reused": 1, "trained": 1}, err  # the stopped run is trained again
    code, _, err = cli(capsys, *TINY, "--seeds", "1", "--steps", "11", "--out", str(out))
    assert code == 2 and "another config" in err


def test_validate_waits_for_another_writer_of_its_folder(capsys, tmp_path, monkeypatch):
    """`tstddev --validate` takes its --out folder's lock, as `sweep` and `matrix` do: a second command on the
    same folder waits, then reuses the first one's students instead of training them again."""
    monkeypatch.setenv("HARD_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "v"
    out.mkdir()
    holder = open(out / "lock", "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)  # another command filling the folder
    done, said = threading.Event(), []
    thread = threading.Thread(target=lambda: (said.extend(cli(capsys, *TINY, "--seeds", "1", "--out", str(out))),
                                              done.set()))
    thread.start()
    try:
        assert not done.wait(8) and not (out / "validate.json").exists()
    finally:
        holder.close()  # the other command ends
    thread.join(120)
    code, _, err = said
    assert done.is_set() and code == 0 and (out / "validate.json").is_file(), err
    assert "being filled by another command" in err


@pytest.mark.parametrize("flags,message", [
    (["--seeds", "0"], "--seeds"), (["--steps", "0"], "--steps"), (["--augment", "none,sharpen"], "sharpen"),
    (["--augment", "shift"], "at least 2 augmentations"), (["--views", "clean"], "invalid choice"),
    (["--chunks", "1"], "--chunks"), (["--chunk-batches", "0"], "--chunk-batches")])
def test_validate_bad_flags_exit_2_with_one_line(capsys, tmp_path, monkeypatch, flags, message):
    monkeypatch.setenv("HARD_CACHE", str(tmp_path / "cache"))
    code, _, err = cli(capsys, *TINY, "--out", str(tmp_path / "v"), *flags)
    assert code == 2 and message in err, err
    assert "Traceback" not in err and len([x for x in err.splitlines() if x.startswith(("error:", "usage:"))]) == 1
