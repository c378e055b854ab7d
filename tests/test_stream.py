"""Streamed data (hard_core/data/stream.py): step batches through a DataLoader match the in-memory ones."""
import pytest
import torch
from torchvision.io import write_png

from hard_core.config import RunConfig
from hard_core.data import Split, load_dataset
from hard_core.data.stream import FileSplit, StepSampler, should_stream, step_batches
from hard_core.runs import RunReader, run_to_dir


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 24 PNGs of 20x20 (resized to 16 when read): a bar whose orientation is the class,
    at a random place, on noise."""
    root = tmp_path_factory.mktemp("stream") / "images"
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(["horizontal", "vertical", "diagonal"]):
        (root / name).mkdir(parents=True)
        for i in range(24):
            img = (torch.rand(3, 20, 20, generator=g) * 60).to(torch.uint8)
            o = int(torch.randint(3, 15, (1,), generator=g))
            if c == 0:
                img[:, o:o + 3, 2:18] = 255
            elif c == 1:
                img[:, 2:18, o:o + 3] = 255
            else:
                for k in range(2, 18):
                    img[:, k, max(0, k - 2):k + 2] = 255
            write_png(img, str(root / name / f"{i:03d}.png"))
    return root


def test_step_sampler_shards_each_global_batch_disjointly_and_replays_any_step():
    whole = list(StepSampler(100, 32, seed=5, start=0, steps=7))
    shards = [list(StepSampler(100, 32, seed=5, start=0, steps=7, rank=r, world=2)) for r in range(2)]
    for step, batch in enumerate(whole):
        a, b = shards[0][step], shards[1][step]
        assert len(a) == len(b) == 16 and not set(a) & set(b) and a + b == batch
    assert list(StepSampler(100, 32, seed=5, start=4, steps=7, rank=1, world=2)) == shards[1][4:]  # resume
    assert list(StepSampler(100, 32, seed=6, start=0, steps=7)) != whole


def test_stream_switches_by_size_and_the_flag_forces_either(folder):
    assert not should_stream("auto", 50_000, (3, 32, 32))  # CIFAR-sized: 150 MB in memory
    assert should_stream("auto", 1_281_167, (3, 224, 224))  # ImageNet-sized: 190 GB, streamed
    assert should_stream("on", 10, (1, 8, 8)) and not should_stream("off", 10**9, (3, 224, 224))
    small = load_dataset("folder", root=folder, image_size=16)
    streamed = load_dataset("folder", root=folder, image_size=16, stream="on")
    assert isinstance(small.train, Split) and isinstance(streamed.train, FileSplit)
    assert streamed.input_shape == small.input_shape == (3, 16, 16)
    assert len(streamed.train) == len(small.train) and torch.equal(streamed.train.y, small.train.y)
    x, y = streamed.test.get(slice(0, 5))  # decoded on demand, exactly as the in-memory copy
    assert torch.equal(x, small.test.get(slice(0, 5))[0]) and torch.equal(y, small.test.y[:5])


def test_a_streamed_folder_trains_and_matches_the_in_memory_run(folder, tmp_path):
    base = dict(dataset="folder", data_root=str(folder), image_size=16, kind="pretrain", loss="ce",
                student="small-cnn", steps=40, batch_size=16, lr=3e-3, log_every=5, eval_every=40,
                snapshot_every=1000, checkpoint_every=1000, suites="none", seed=0, device="cpu")
    runs = {}
    for mode, workers in (("off", 0), ("on", 2)):
        runs[mode] = run_to_dir(RunConfig(**base, stream=mode, workers=workers), tmp_path / mode)
    events = {m: RunReader(d).poll() for m, d in runs.items()}
    loss = {m: [e["loss"] for e in ev if e["kind"] == "step"] for m, ev in events.items()}
    assert len(loss["on"]) == 8
    assert loss["on"] == pytest.approx(loss["off"], rel=1e-5)  # the same images, batch by batch
    acc = {m: [e for e in ev if e["kind"] == "eval"][-1]["acc"]["test"] for m, ev in events.items()}
    assert acc["on"] == acc["off"] and acc["on"] > 0.6, acc  # it learned (chance 0.33)


def test_in_memory_data_can_be_fed_through_the_data_loader_too():
    ds = load_dataset("mnist5k")
    kw = dict(batch_size=32, seed=1, start=2, steps=5, device="cpu", rank=1, world=2)
    held = list(step_batches(ds.train, **kw))
    fed = list(step_batches(ds.train, stream=True, workers=0, **kw))
    assert len(held) == len(fed) == 3
    for (xa, ya), (xb, yb) in zip(held, fed):
        assert xa.shape == (16, 1, 28, 28) and torch.equal(xa, xb) and torch.equal(ya, yb)
