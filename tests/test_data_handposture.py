"""Hand-posture reader: ST's preprocessing rule by rule on hand-made recordings, the layout (folder or zip,
any user names, recorded order), the splits, and the facts of the shared data README reproduced with
mcutrain's TFLite importer."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mcutrain import api
from mcutrain.core import semantics
from mcutrain.data import handposture as hp
from mcutrain.data.shared import SharedDataMissing, read_manifest, shared_path

CFG = hp.HandPostureConfig.from_manifest()
HEAD = np.array(["target_status", "valid", "signal_per_spad", "distance_mm"])


def _shared(*parts: str) -> Path:
    try:
        return shared_path(*parts)
    except SharedDataMissing as e:
        pytest.skip(f"shared data absent: {e}")


# --- hand-made recordings --------------------------------------------------------------------------


def _frames() -> tuple[np.ndarray, np.ndarray]:
    """8 frames (4, 64, 8) and their ground truth; frames 0, 5 and 6 pass the filter."""
    z = np.zeros((4, 64, 8))
    z[0], z[1], z[2], z[3] = 5, 1, 1000.0, 200.0  # status, valid, signal, distance
    z[0, 3, 0], z[3, 3, 0] = 255, 50.0  # bad status: not the minimum, reset to 4000 / 0
    z[3, 10, 0] = 350.0  # > 200 + 120: background
    z[0, 11, 0], z[3, 11, 0] = 9, 320.0  # status 9 is valid; 320 <= 200 + 120 stays
    z[2, 5, 1] = np.nan  # NaN: dropped
    z[3, 7, 2] = 99.0  # mn < 100: dropped
    z[3, :, 3] = 401.0  # mn > 400: dropped
    z[0, :, 4] = 3  # no valid zone: mn = 4000, dropped
    z[3, 0, 5] = 100.0  # mn = 100: kept
    z[3, :, 6] = 500.0
    z[3, 1, 6] = 400.0  # mn = 400: kept; 520 and 521 below
    z[3, 2, 6], z[3, 4, 6] = 520.0, 521.0
    gt = np.array([21.0, 21, 21, 21, 21, 32, 0, np.nan])  # frame 7: no ground truth, dropped
    return z, gt


def _norm(d: float, s: float) -> tuple[float, float]:
    return (d - 295) / 196, (s - 281) / 452


def test_preprocess_rules() -> None:
    z, _ = _frames()
    x, kept = hp.preprocess(z, HEAD, CFG)
    assert kept.tolist() == [True, False, False, False, False, True, True, True]
    assert x.shape == (4, 2, 8, 8) and x.dtype == np.float32
    f0 = x[0]
    np.testing.assert_allclose(f0[:, 0, 0], _norm(200, 1000), rtol=1e-6)  # zone 0: row 0, col 0
    np.testing.assert_allclose(f0[:, 0, 3], _norm(4000, 0), rtol=1e-6)  # bad status
    np.testing.assert_allclose(f0[:, 1, 2], _norm(4000, 0), rtol=1e-6)  # zone 10 = row 1, col 2: background
    np.testing.assert_allclose(f0[:, 1, 3], _norm(320, 1000), rtol=1e-6)  # status 9, within mn + 120
    f6 = x[2]
    np.testing.assert_allclose(f6[:, 0, 2], _norm(520, 1000), rtol=1e-6)  # exactly mn + 120: kept
    np.testing.assert_allclose(f6[:, 0, 4], _norm(4000, 0), rtol=1e-6)
    np.testing.assert_allclose(f6[:, 0, 0], _norm(500, 1000), rtol=1e-6)


def _write(root: Path, posture: str, user: str, take: int, name: str, start: float, gt_id: float) -> None:
    z, gt = _frames()
    gt = np.where(np.isnan(gt), np.nan, gt_id)
    d = root / "Dataset" / posture / f"log__{posture}__{user}__{take}__VL53L8__8x8__20230101_000000" / "npz"
    d.mkdir(parents=True, exist_ok=True)
    np.savez(
        d / name, zone_data=z, zone_head=HEAD, glob_data=gt[None], glob_head=np.array([".GestureGT"]),
        start_tstmp=np.float64(start), end_tstmp=np.float64(start + 1),
    )  # fmt: skip


@pytest.fixture
def small_source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    _write(root, "Like", "User10", 1, "b.npz", 10.0, 21)
    _write(root, "Like", "User10", 1, "a.npz", 20.0, 21)  # named first, recorded second
    _write(root, "Fist", "User2", 1, "c.npz", 30.0, 32)
    _write(root, "None", "User2", 2, "d.npz", 5.0, 0)
    (root / "Dataset" / "README.txt").write_text("not a recording")
    return root


def test_folder_and_zip_any_users_recorded_order(small_source: Path, tmp_path: Path) -> None:
    f = hp.load(small_source)
    assert f.users == ("User2", "User10")  # natural order
    assert len(f) == 4 * 3 and f.x.shape == (12, 2, 8, 8)  # frames 0, 5, 6 of each file
    u10 = f.of_user("User10")
    assert [Path(p).name for p in u10.file[::4]] == ["b.npz", "a.npz"]  # by start_tstmp
    assert u10.frame.tolist() == [0, 5, 6] * 2
    u2 = f.of_user("User2")
    assert u2.session[0].startswith("log__None__User2__2") and u2.session[-1].startswith("log__Fist")
    assert u2.y.tolist() == [0] * 3 + [CFG.class_ids.index(32)] * 3
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(small_source.rglob("*")):
            zf.write(p, p.relative_to(small_source).as_posix())
    g = hp.load(zpath)
    for k in ("x", "y", "user", "session", "file", "frame"):
        assert np.array_equal(getattr(f, k), getattr(g, k)), k
    assert len(hp.load(small_source, users=["User2"])) == 6


def test_load_errors(small_source: Path, tmp_path: Path) -> None:
    with pytest.raises(hp.HandPostureError, match="no recordings"):
        hp.load(tmp_path / "src" / "Dataset" / "Like", users=["Nobody"])
    with pytest.raises(hp.HandPostureError, match="does not exist"):
        hp.load(tmp_path / "missing")
    _write(small_source, "Ok", "User3", 1, "e.npz", 1.0, 22)
    with pytest.raises(hp.HandPostureError, match=r"posture ids \[22\]"):
        hp.load(small_source)
    with pytest.raises(hp.HandPostureError, match="User3"):
        hp.load(small_source, users=["User2"]).of_user("User3")


def test_splits(small_source: Path) -> None:
    f = hp.load(small_source)
    s, t = f.adaptation_split("User2", 0.7)  # per recording: 2 of the 3 frames of each take
    assert s.frame.tolist() == [0, 5] * 2 and t.frame.tolist() == [6] * 2
    assert set(s.session) == set(t.session)
    s, t = f.adaptation_split("User2", 0.5, per="user")  # first take streams, second is tested
    assert set(s.session).isdisjoint(t.session) and len(s) == len(t) == 3
    sh = f.shuffled(3)
    assert sorted(zip(sh.file, sh.frame, strict=True)) == sorted(zip(f.file, f.frame, strict=True))
    assert np.array_equal(sh.x, f.shuffled(3).x) and not np.array_equal(sh.frame, f.frame)
    s, t = f.cross_user_split("User10")
    assert set(s.user) == {"User2"} and set(t.user) == {"User10"}
    with pytest.raises(hp.HandPostureError, match="strictly between"):
        f.adaptation_split("User2", 1.0)
    with pytest.raises(hp.HandPostureError, match="unknown users"):
        f.cross_user_split(["User7"])


def test_read_st_config(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "a:\n  b: 1  # comment\n  c:\n  - x\n  - 'y'\n  d:\n    e: 2.5\n    f: null\ng: true\nh: C:/p/q\n"
    )
    assert hp.read_st_config(p) == {
        "a": {"b": 1, "c": ["x", "y"], "d": {"e": 2.5, "f": None}},
        "g": True,
        "h": "C:/p/q",
    }


# --- the shared recordings -------------------------------------------------------------------------


def test_manifest_matches_st_config() -> None:
    """The manifest's thresholds are the config's; the class order is ST's loader's: names sorted by id."""
    path = _shared(read_manifest("handposture")["st_config"])
    st = hp.read_st_config(path)
    pre = st["preprocessing"]
    assert (CFG.min_distance_mm, CFG.max_distance_mm, CFG.background_distance_mm) == (
        pre["Min_distance"], pre["Max_distance"], pre["Background_distance"]
    )  # fmt: skip
    st_ids = {"None": 0, "FlatHand": 20, "Like": 21, "Love": 24, "Dislike": 25, "BreakTime": 27,
              "CrossHands": 28, "Fist": 32}  # fmt: skip  # ST's hand_posture_dict, these classes
    assert tuple(sorted(st["dataset"]["class_names"], key=st_ids.__getitem__)) == CFG.class_names
    assert tuple(st_ids[n] for n in CFG.class_names) == CFG.class_ids
    assert CFG.with_st_config(path) == CFG


@pytest.fixture(scope="module")
def frames() -> hp.HandPostureFrames:
    return hp.load(_shared(read_manifest("handposture")["source"]))


@pytest.fixture(scope="module")
def graph():
    return api.load(_shared(read_manifest("handposture")["model"]))


def test_reproduces_readme_facts(frames: hp.HandPostureFrames, graph) -> None:
    assert len(frames) == 9272
    assert frames.users == ("User1", "User2", "User3")
    correct = semantics.forward(graph, torch.from_numpy(frames.x)).argmax(1).numpy() == frames.y
    assert abs(correct.mean() - 0.718) <= 0.005
    for user, acc in (("User1", 0.63), ("User2", 0.79), ("User3", 0.85)):
        assert abs(correct[frames.user == user].mean() - acc) <= 0.005, user


def test_channels_match_tflite_nhwc(frames: hp.HandPostureFrames, graph) -> None:
    """Channel 0 distance, 1 signal: the IR on [N, 2, 8, 8] equals LiteRT on the NHWC transpose."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(_shared(read_manifest("handposture")["model"])))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 8, 8, 2)
    xs = frames.x[:: len(frames) // 50][:50]
    ref = []
    for x in xs:
        interp.set_tensor(inp["index"], x.transpose(1, 2, 0)[None])
        interp.invoke()
        ref.append(interp.get_tensor(out["index"])[0])
    ours = semantics.forward(graph, torch.from_numpy(xs)).numpy()
    np.testing.assert_allclose(ours, np.array(ref), atol=1e-5)


def test_recorded_order_and_zip_equals_folder(frames: hp.HandPostureFrames, tmp_path: Path) -> None:
    for user in frames.users:
        u = frames.of_user(user)
        change = np.flatnonzero(u.file[1:] != u.file[:-1]) + 1
        assert len(set(u.file[change])) == len(change)  # each file's frames are contiguous
        within = np.ones(len(u), dtype=bool)
        within[change] = False
        assert (np.diff(u.frame)[within[1:]] > 0).all()
    src = _shared(read_manifest("handposture")["source"])
    with zipfile.ZipFile(src) as zf:
        zf.extractall(tmp_path, [n for n in zf.namelist() if "__User2__" in n])
    f = hp.load(tmp_path)
    u2 = frames.of_user("User2")
    assert np.array_equal(f.x, u2.x) and np.array_equal(f.y, u2.y) and np.array_equal(f.frame, u2.frame)


def test_adaptation_split_shared(frames: hp.HandPostureFrames) -> None:
    for user in frames.users:
        u = frames.of_user(user)
        pos = {(f, i): k for k, (f, i) in enumerate(zip(u.file, u.frame, strict=True))}
        s, t = frames.adaptation_split(user, 0.5)
        assert len(s) + len(t) == len(u) and abs(len(s) - len(t)) <= len(set(u.session))
        assert set(s.y) == set(t.y)  # every posture of the user is streamed and tested
        ps = np.array([pos[k] for k in zip(s.file, s.frame, strict=True)])
        pt = np.array([pos[k] for k in zip(t.file, t.frame, strict=True)])
        assert (np.diff(ps) > 0).all() and (np.diff(pt) > 0).all()  # recorded order kept
        for sess in set(u.session):  # within a recording, streamed frames come first
            assert ps[s.session == sess].max() < pt[t.session == sess].min()
