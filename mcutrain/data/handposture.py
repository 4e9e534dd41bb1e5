"""ST hand-posture recordings (8x8 multizone ToF) with ST's own preprocessing, in recorded order.

A source is ST's dataset zip or an unpacked folder of the same layout (any users)::

    <root>/<Posture>/log__<Posture>__<User>__<take>__<...>/npz/*.npz

Each npz holds ``zone_data`` (fields x 64 zones x T frames, fields named by ``zone_head``:
``target_status``, ``valid``, ``signal_per_spad``, ``distance_mm``) and ``glob_data`` (``.GestureGT``:
the posture id of every frame). Preprocessing, as ST's loader (stm32ai-modelzoo
``hand_posture/src/preprocessing/data_loader.py``) with the constants of ``datasets/handposture.toml``:

1. drop frames with a NaN anywhere in their zone data or ground truth;
2. a zone is valid if its ``target_status`` is 5 or 9; ``mn`` = min(4000, smallest valid distance);
3. drop the frame unless ``100 <= mn <= 400`` mm;
4. valid zones farther than ``mn + 120`` mm are background and become invalid; every invalid zone
   (bad status or background) gets distance 4000 mm and signal 0;
5. ``x = [(distance - 295) / 196, (signal - 281) / 452]``, zone ``z`` at row ``z // 8``, column ``z % 8``.

Step 4 also resets zones with a bad status, as ST's code does (the data README only mentions background
zones; without it the model scores 40% instead of 71.8%). Class index = rank of the posture id.

Frames come back channels first (``[N, 2, 8, 8]``: distance, signal), the per-sample layout of
mcutrain's IR for the TFLite model's NHWC ``(1, 8, 8, 2)`` input; users in natural order (User2 before
User10), and each user's frames in recorded order (files by ``start_tstmp``, frames by index).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from mcutrain.data.shared import read_manifest, shared_path

MANIFEST = "handposture"


class HandPostureError(ValueError):
    """A source that does not have the expected layout or content; the message names the file."""


# ---------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandPostureConfig:
    min_distance_mm: float
    max_distance_mm: float
    background_distance_mm: float
    valid_status: tuple[int, ...]
    default_distance_mm: float
    default_signal: float
    distance_offset: float
    distance_scale: float
    signal_offset: float
    signal_scale: float
    class_ids: tuple[int, ...]  # posture ids, ascending: class index = position
    class_names: tuple[str, ...]

    @staticmethod
    def from_manifest(manifest: Mapping[str, Any] | None = None) -> HandPostureConfig:
        m = manifest if manifest is not None else read_manifest(MANIFEST)
        p, c = m["preprocessing"], m["classes"]
        ids = tuple(int(i) for i in c["ids"])
        if list(ids) != sorted(ids) or len(ids) != len(c["names"]):
            raise HandPostureError("manifest [classes]: ids must be ascending, one name per id")
        return HandPostureConfig(
            min_distance_mm=float(p["min_distance_mm"]),
            max_distance_mm=float(p["max_distance_mm"]),
            background_distance_mm=float(p["background_distance_mm"]),
            valid_status=tuple(int(s) for s in p["valid_status"]),
            default_distance_mm=float(p["default_distance_mm"]),
            default_signal=float(p["default_signal"]),
            distance_offset=float(p["distance_offset"]),
            distance_scale=float(p["distance_scale"]),
            signal_offset=float(p["signal_offset"]),
            signal_scale=float(p["signal_scale"]),
            class_ids=ids,
            class_names=tuple(str(n) for n in c["names"]),
        )

    def with_st_config(self, path: str | Path) -> HandPostureConfig:
        """The distance thresholds of an ST training config (``preprocessing``: ``Min_distance``,
        ``Max_distance``, ``Background_distance``); its ``class_names`` must be this config's classes."""
        cfg = read_st_config(path)
        pre = cfg.get("preprocessing") or {}
        names = (cfg.get("dataset") or {}).get("class_names")
        if names is not None and sorted(map(str, names)) != sorted(self.class_names):
            raise HandPostureError(f"{path}: class_names {names} differ from {list(self.class_names)}")
        try:
            return replace(
                self,
                min_distance_mm=float(pre["Min_distance"]),
                max_distance_mm=float(pre["Max_distance"]),
                background_distance_mm=float(pre["Background_distance"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise HandPostureError(f"{path}: no usable preprocessing.{e} in the ST config") from None


def read_st_config(path: str | Path) -> dict[str, Any]:
    """The YAML subset of ST's model-zoo configs, without a YAML dependency: nested mappings by
    indentation, ``key: scalar`` and ``- item`` lists of scalars; values are int, float, bool, None or str."""
    lines: list[tuple[int, str]] = []
    for raw in Path(path).read_text().splitlines():
        text = raw.split(" #", 1)[0].rstrip()
        if text.strip() and not text.lstrip().startswith("#"):
            lines.append((len(text) - len(text.lstrip()), text.strip()))

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1].startswith("- "):
            items = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                items.append(_scalar(lines[i][1][2:]))
                i += 1
            return items, i
        d: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
            key, _, val = lines[i][1].partition(":")
            i += 1
            nested = i < len(lines) and (
                lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))
            )
            d[key.strip()], i = block(i, lines[i][0]) if not val.strip() and nested else (_scalar(val), i)
        return d, i

    out, end = block(0, 0) if lines else ({}, 0)
    if end != len(lines):
        raise HandPostureError(f"{path}: cannot read line {lines[end][1]!r} (unsupported YAML)")
    return out


def _scalar(text: str) -> Any:
    s = text.strip()
    if s in ("", "null", "~"):
        return None
    if s in ("true", "false"):
        return s == "true"
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


# ---------------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------------


def preprocess(
    zone_data: np.ndarray, zone_head: Sequence[str], cfg: HandPostureConfig
) -> tuple[np.ndarray, np.ndarray]:
    """ST's preprocessing of one recording: ``zone_data`` (fields, 64, T) -> (``x`` float32 [K, 2, 8, 8],
    ``kept`` bool [T]). Ground-truth NaNs are the caller's (they drop the frame too)."""
    head = [str(h) for h in zone_head]
    try:
        status, dist, sig = (
            zone_data[head.index(f)] for f in ("target_status", "distance_mm", "signal_per_spad")
        )
    except ValueError:
        raise HandPostureError(
            f"zone_head {head} lacks target_status, distance_mm or signal_per_spad"
        ) from None
    if zone_data.shape[1] != 64:
        raise HandPostureError(f"expected 64 zones per frame, got {zone_data.shape[1]}")
    finite = ~np.isnan(zone_data).any(axis=(0, 1))
    valid = np.isin(status, cfg.valid_status)
    mn = np.minimum(cfg.default_distance_mm, np.where(valid, dist, np.inf).min(axis=0))
    kept = finite & (mn >= cfg.min_distance_mm) & (mn <= cfg.max_distance_mm)
    valid = valid & (dist <= mn + cfg.background_distance_mm)
    d = np.where(valid, dist, cfg.default_distance_mm)[:, kept]
    s = np.where(valid, sig, cfg.default_signal)[:, kept]
    x = np.stack(
        [(d - cfg.distance_offset) / cfg.distance_scale, (s - cfg.signal_offset) / cfg.signal_scale]
    )  # (2, 64, K)
    return np.ascontiguousarray(x.transpose(2, 0, 1).reshape(-1, 2, 8, 8), dtype=np.float32), kept


# ---------------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandPostureFrames:
    """Preprocessed frames with their provenance; every array has one row per frame."""

    x: np.ndarray  # float32 [N, 2, 8, 8]: normalized distance, normalized signal
    y: np.ndarray  # int64 [N]: class index (rank of the posture id)
    user: np.ndarray  # str [N], e.g. "User1"
    session: np.ndarray  # str [N]: the recording folder (one take of one posture), "log__Like__User1__2__..."
    file: np.ndarray  # str [N]: npz path inside the source
    frame: np.ndarray  # int64 [N]: frame index within the npz (before filtering)
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray | slice) -> HandPostureFrames:
        return HandPostureFrames(
            self.x[idx], self.y[idx], self.user[idx], self.session[idx], self.file[idx], self.frame[idx],
            self.class_names,
        )  # fmt: skip

    @property
    def users(self) -> tuple[str, ...]:
        """Users in the order of the frames."""
        _, first = np.unique(self.user, return_index=True)
        return tuple(str(self.user[i]) for i in sorted(first))

    def one_hot(self) -> np.ndarray:
        """float32 [N, classes] targets for cross-entropy."""
        return np.eye(len(self.class_names), dtype=np.float32)[self.y]

    def shuffled(self, seed: int = 0) -> HandPostureFrames:
        """The frames in a ``default_rng(seed)`` permutation: a stream that interleaves the postures."""
        return self.take(np.random.default_rng(seed).permutation(len(self)))

    def of_user(self, user: str) -> HandPostureFrames:
        mask = self.user == user
        if not mask.any():
            raise HandPostureError(f"no frames of user {user!r}: users are {', '.join(self.users)}")
        return self.take(np.flatnonzero(mask))

    def adaptation_split(
        self, user: str, fraction: float = 0.5, per: str = "recording"
    ) -> tuple[HandPostureFrames, HandPostureFrames]:
        """On-line protocol for one user: (stream, test), both in recorded order.

        ``per="recording"``: of every recording (one take of one posture), the first ``fraction`` of its
        frames stream to the device and the later ones are tested; every posture the user recorded is in
        both parts. ``per="user"``: the first ``fraction`` of all the user's frames, in recorded order
        (postures recorded late are then never streamed)."""
        if not 0.0 < fraction < 1.0:
            raise HandPostureError(f"fraction must lie strictly between 0 and 1, got {fraction}")
        u = self.of_user(user)
        stream = np.zeros(len(u), dtype=bool)
        if per == "recording":
            for s in np.unique(u.session):
                idx = np.flatnonzero(u.session == s)
                stream[idx[: int(fraction * len(idx))]] = True
        elif per == "user":
            stream[: int(fraction * len(u))] = True
        else:
            raise HandPostureError(f"unknown split {per!r}: use 'recording' or 'user'")
        return u.take(np.flatnonzero(stream)), u.take(np.flatnonzero(~stream))

    def cross_user_split(
        self, test_users: str | Sequence[str]
    ) -> tuple[HandPostureFrames, HandPostureFrames]:
        """(stream, test): the other users' frames in recorded order, and all frames of ``test_users``."""
        wanted = [test_users] if isinstance(test_users, str) else list(test_users)
        unknown = sorted(set(wanted) - set(self.users))
        if unknown:
            raise HandPostureError(f"unknown users {unknown}: users are {', '.join(self.users)}")
        test = np.isin(self.user, wanted)
        if test.all():
            raise HandPostureError("cross-user split needs at least one user outside the test users")
        return self.take(np.flatnonzero(~test)), self.take(np.flatnonzero(test))


# ---------------------------------------------------------------------------------------------------
# Reading a source
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    path: str  # posix path inside the source
    posture: str
    user: str
    session: str
    open: Callable[[], bytes]


def _entries(source: Path) -> Iterator[_Entry]:
    if source.is_dir():
        for p in source.rglob("*.npz"):
            e = _entry(p.relative_to(source).as_posix(), p.read_bytes)
            if e is not None:
                yield e
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".npz") and not info.is_dir():
                    e = _entry(info.filename, lambda zf=zf, info=info: zf.read(info))
                    if e is not None:
                        yield e
    else:
        raise HandPostureError(f"hand-posture source {source} is neither a folder nor a zip file")


def _entry(rel: str, read: Callable[[], bytes]) -> _Entry | None:
    """The recording of npz file ``rel``, ``None`` for a file outside the layout."""
    parts = PurePosixPath(rel).parts
    if len(parts) < 4 or parts[-2] != "npz" or not parts[-3].startswith("log__"):
        return None
    fields = parts[-3].split("__")
    if len(fields) < 3 or not fields[1] or not fields[2]:
        raise HandPostureError(
            f"{rel}: recording folder should be log__<Posture>__<User>__..., got {parts[-3]}"
        )
    return _Entry(rel, fields[1], fields[2], parts[-3], read)


def _natural(s: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def load(
    source: str | Path | None = None,
    users: Sequence[str] | None = None,
    config: HandPostureConfig | None = None,
) -> HandPostureFrames:
    """Read and preprocess every recording of ``source`` (default: the shared data zip), optionally of
    some ``users`` only (e.g. ``["User2"]``)."""
    cfg = config or HandPostureConfig.from_manifest()
    src = Path(source) if source is not None else shared_path(read_manifest(MANIFEST)["source"])
    if not src.exists():
        raise HandPostureError(f"hand-posture source {src} does not exist")
    label_of = {pid: i for i, pid in enumerate(cfg.class_ids)}
    files: list[tuple[tuple[Any, ...], _Entry, dict[str, np.ndarray]]] = []
    for e in _entries(src):
        if users is not None and e.user not in users:
            continue
        try:
            with np.load(io.BytesIO(e.open())) as z:
                d = {k: z[k] for k in ("zone_data", "zone_head", "glob_data") if k in z}
                d["glob_head"] = z["glob_head"] if "glob_head" in z else np.array([".GestureGT"])
                start = float(z["start_tstmp"]) if "start_tstmp" in z else float("nan")
        except (OSError, ValueError) as err:
            raise HandPostureError(f"{e.path}: not a readable npz ({err})") from None
        if {"zone_data", "zone_head", "glob_data"} - d.keys():
            raise HandPostureError(f"{e.path}: needs zone_data, zone_head and glob_data")
        files.append(((_natural(e.user), np.nan_to_num(start, nan=np.inf), e.session, e.path), e, d))
    if not files:
        which = f" of users {list(users)}" if users is not None else ""
        raise HandPostureError(
            f"no recordings{which} in {src}: expected <Posture>/log__<Posture>__<User>__.../npz/*.npz"
        )
    files.sort(key=lambda f: f[0])
    xs, ys, meta = [], [], []
    for _, e, d in files:
        heads = [str(h) for h in d["glob_head"]]
        gt = d["glob_data"][heads.index(".GestureGT") if ".GestureGT" in heads else 0].astype(np.float64)
        x, kept = preprocess(d["zone_data"].astype(np.float64), d["zone_head"], cfg)
        kept_gt = ~np.isnan(gt)
        x = x[kept_gt[kept]]
        idx = np.flatnonzero(kept & kept_gt)
        ids = gt[idx].astype(np.int64)
        unknown = sorted(set(ids.tolist()) - set(label_of))
        if unknown:
            raise HandPostureError(
                f"{e.path}: posture ids {unknown} are not among the classes {cfg.class_ids}"
            )
        xs.append(x)
        ys.append(np.array([label_of[i] for i in ids], dtype=np.int64))
        meta.append((e, idx))
    n = [len(i) for _, i in meta]
    return HandPostureFrames(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        user=np.repeat([e.user for e, _ in meta], n).astype(str),
        session=np.repeat([e.session for e, _ in meta], n).astype(str),
        file=np.repeat([e.path for e, _ in meta], n).astype(str),
        frame=np.concatenate([i for _, i in meta]).astype(np.int64),
        class_names=cfg.class_names,
    )
