"""`mcutrain demo depth --train-flights ... --test-flights ...`: the drone case on the real flights,
against honest baselines, per flight type (issue #14; docs/depth.md).

The training flights stream to the training step in recorded time order (``order="time"``: flight after
flight, as a drone has them) or in one seeded shuffled order; the device keeps a replay reservoir of
past samples (:mod:`mcutrain.demos.replay`) whose bytes the plan counts (``LinkApp.replay_slots``,
category ``serial_link``, part ``replay``). The ToF footprint is fitted on the training frames
(:mod:`mcutrain.data.footprint_fit`). On the held-out flights it prints zone RMSE per flight type of the
pre-trained network, the per-zone mean, the scale+shift calibrated network, the network adapted on
blanked frames and the adapted network (:mod:`mcutrain.demos.depth_baselines`), and the GAP9 memory of
the plan beside the full update's. The training runs in the simulator, the same step the firmware runs,
on the schedule the firmware's reservoir draws (firmware/link/mt_link_replay.c); with ``qemu`` the link
firmware of the plan also trains on the time-ordered stream in QEMU (mps2-an386), through its reservoir,
and its pulled parameters are compared with the simulator's.

With ``blend`` A, the plan's firmware also keeps the running mean of the zones it trained on
(``LinkApp.blend``: INFER BLEND, firmware/link/mt_link_blend.c) and the rows "+ running mean (A)" are
``A * network + (1 - A) * that mean`` (:mod:`mcutrain.demos.blend`, the stream's own targets, as the
device has them); with ``qemu`` the device's INFER BLEND answers on held-out frames are compared with it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcutrain import api
from mcutrain.core import ir
from mcutrain.core.units import format_bytes
from mcutrain.data.drone import DroneBatch, load_flights
from mcutrain.data.flight_split import FlightSplit
from mcutrain.data.footprint_fit import edge_score, fit_footprint, with_footprint
from mcutrain.data.frame_scale import input_scale
from mcutrain.demos import depth_stream as ds
from mcutrain.demos.adaptation import BOARD, device_link, stream_samples
from mcutrain.demos.blend import RunningMean
from mcutrain.demos.depth_baselines import (
    baselines,
    blank_level,
    blanked,
    format_table,
    graph_depth,
    zone_predictions,
    zone_rmse,
)
from mcutrain.demos.replay import ReplayConfig, config_of, schedule
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.selftest import rel_diff
from mcutrain.host import Block, Link, Sample
from mcutrain.train.app_memory import link_memory
from mcutrain.train.planner import PlanResult
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors, unflatten_params
from mcutrain.train.update_plan import LinkApp, LossConfig, LossKind, OptimizerConfig, OptimizerKind, ZoneSpec
from mcutrain.zoo.depth import MAX_DEPTH_M

DECODER_LAYERS = 8  # dec_conv.3, dec_up.2, dec_conv.2, dec_up.1, dec_conv.1, dec_up.0, dec_conv.0, head
BASELINES = ("pretrained", "zone_mean", "scale_shift", "blanked")
BLEND_GRID = tuple(k / 10 for k in range(11))
ORDER_NAMES = {"time": "time order", "shuffle": "shuffled"}
PROBE_FRAMES = 8  # held-out frames whose INFER BLEND the device answers (--qemu with a blend)


@dataclass
class FlightsConfig:
    """The recipe (docs/depth.md, chosen on the tuning split only)."""

    train_flights: str = (
        "split"  # "A0,O0,..." or "split": the fixed split's (datasets/tof_drone_flights.toml)
    )
    test_flights: str = "split"
    data: Path | None = None  # folder of the flights (None: the shared data's)
    orders: tuple[str, ...] = ("time",)  # "time" and/or "shuffle"
    model: str = "depth"
    plan: str = "decoder"  # the decoder and head (last 8 layers), or "full"
    budget: int = 1_258_291  # 1.2 MB: RAM the plan, reservoir included, must fit
    lr: float = 1e-3
    batch: int = 8
    loss: str = "mse"
    every: int = 1  # stream every k-th labelled training frame
    test_every: int = 1  # evaluate on every k-th held-out frame
    slots: int = 16  # reservoir samples (0: none); 16 keeps the plan inside GAP9's L2 (docs/depth.md)
    replay: int = 3  # replayed samples per incoming one
    standardize: bool = True
    seed: int = 0
    blanked: bool = True  # the blanked-image control (one more adaptation)
    blend: float | None = None  # the network's weight when shrunk toward the running zone mean (None: not)
    gap9: bool = True  # the plan's and the full update's memory on the gap9 target
    qemu: bool = False  # also train the plan's link firmware in QEMU on the time-ordered stream
    out: Path = Path("out/demo-depth-flights")
    extra: dict[str, Any] = field(default_factory=dict)


def flight_names(spec: str, held_out: bool) -> list[str]:
    """Flight names from ``"A0,O0,..."``, or the fixed split's: ``split`` (train -> test flights), ``tune``
    (its tuning split: fit -> validation flights)."""
    s = spec.strip()
    if s in ("split", "tune"):
        fs = FlightSplit.load()
        return list((fs.val if held_out else fs.fit) if s == "tune" else (fs.test if held_out else fs.train))
    return [n.strip() for n in spec.split(",") if n.strip()]


def make_plans(
    g: ir.Graph, cfg: FlightsConfig, fp: Any, updates: int, replay: ReplayConfig | None
) -> tuple[PlanResult, PlanResult]:
    """(the plan that adapts, the full update's plan), both counting the link firmware with the
    reservoir (``LinkApp.replay_slots``, the firmware's schedule too) in their peak RAM."""
    loss = LossConfig(LossKind(cfg.loss), masked=True, zone=ZoneSpec(fp.top, fp.left, fp.zone_h, fp.zone_w))
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=cfg.lr, schedule="cosine", total_steps=max(1, updates))
    app = replay.app(blend=cfg.blend) if replay is not None else LinkApp.make(blend=cfg.blend)
    full = api.plan(g, None, "full", loss=loss, optimizer=opt, batch=cfg.batch, app=app)
    if cfg.plan == "full":
        return full, full
    k = DECODER_LAYERS
    return api.plan(g, cfg.budget, "last-k", k=k, loss=loss, optimizer=opt, batch=cfg.batch, app=app), full


def adapt(g: ir.Graph, res: PlanResult, train: DroneBatch, recipe: ds.StreamRecipe) -> Simulator:
    frames = ds.stream_frames(train, recipe)
    x, t, m = ds.decode(ds.encode(frames, recipe), g.inputs[0][1])
    sim = Simulator(g, res.plan)
    ds.adapt(sim, x, t, m, config_of(res.plan.app))  # the plan's reservoir: the firmware's schedule
    return sim


def blend_row(name: str, a: float) -> str:
    return f"{name} + running mean ({a:g})"


def running_mean(train: DroneBatch, recipe: ds.StreamRecipe) -> RunningMean:
    """The device's running mean of the zones (target units) after streaming ``recipe``'s frames."""
    frames = ds.stream_frames(train, recipe)
    _, t, m = ds.decode(ds.encode(frames, recipe), (1, *frames.image.shape[1:]))
    rm = RunningMean(t.shape[1])
    for ti, mi in zip(t, m, strict=True):
        rm.observe(ti, mi)
    return rm


def blend_m(zones_m: np.ndarray, rm: RunningMean, a: float) -> np.ndarray:
    """``a * zones + (1 - a) * running mean`` in metres (``[N, 8, 8]``; the zones alone where none seen)."""
    flat = np.asarray(zones_m, np.float32).reshape(len(zones_m), -1) / np.float32(MAX_DEPTH_M)
    return (rm.blend(flat, a) * MAX_DEPTH_M).reshape(np.shape(zones_m))


def device_blend_check(
    link: Link,
    trained: ir.Graph,
    probe: DroneBatch,
    rm: RunningMean,
    a: float,
    cfg: FlightsConfig,
    first_id: int,
) -> float:
    """INFER BLEND on the frames of ``probe`` against the host's blend of the same network with the
    mirror's running mean: their largest relative difference."""
    got = []
    for i in range(len(probe)):
        s, o = input_scale(probe.image[i], cfg.standardize)
        x = Sample(
            Block.u8(probe.image[i].ravel(), scale=s, offset=o), Block.none(), Block.none(), first_id + i
        )
        got.append(link.infer(x, blend=True) * MAX_DEPTH_M)
    want = blend_m(zone_predictions(graph_depth(trained, cfg.standardize), probe), rm, a)
    return rel_diff(np.stack(got).ravel(), want.ravel())


def on_device(
    g: ir.Graph,
    res: PlanResult,
    train: DroneBatch,
    recipe: ds.StreamRecipe,
    sim: Simulator,
    cfg: FlightsConfig,
    probe: DroneBatch,
    rm: RunningMean,
) -> tuple[ir.Graph, dict[str, Any]]:
    """Build the plan's link firmware, train it in QEMU on the stream of ``recipe`` (SAMPLE+REPLAY: its
    reservoir draws the schedule), pull its parameters; (the device-trained graph, how it agrees with
    ``sim``: the simulator trained on the same schedule; with a blend, how its INFER BLEND on the frames of
    ``probe`` agrees with the host's blend with ``rm``, the running mean of the same stream)."""
    samples, replay = ds.encode(ds.stream_frames(train, recipe), recipe), config_of(res.plan.app)
    a = res.plan.app.blend if res.plan.app is not None else None
    fb = build_firmware(emit_firmware(g, res.plan, cfg.out / "device", BOARD, app="link").out_dir)
    print(f"      {fb.summary().splitlines()[0].strip()}")
    t0 = time.perf_counter()
    with device_link(fb, g) as link:
        stream_samples(link, samples, desc="      device", replay=replay is not None)
        stats, info = link.device_stats(), link.hello()
        got = link.get_params()
        trained = g.replace(params=unflatten_params(g, res.plan, got))
        if a is not None:
            blend_err = device_blend_check(link, trained, probe, rm, a, cfg, len(samples))
    want = np.concatenate([v for _, v in trainable_vectors(g, res.plan, sim.numpy_params())])
    agree = {
        "board": BOARD,
        "samples": len(samples),
        "training_steps": stats.samples_trained,
        "simulator_training_steps": len(schedule(len(samples), replay)),
        "updates": stats.step,
        "reservoir": asdict(info.replay) if info.replay else None,
        "param_rel_err_vs_simulator": rel_diff(got, want),
        "instructions_last_step": int(stats.last_step_instr),
        "seconds": time.perf_counter() - t0,
    }
    if a is not None:
        agree["blend_probe_frames"] = len(probe)
        agree["blend_rel_err_vs_host"] = blend_err
    return trained, agree


def gap9_memory(g: ir.Graph, res: PlanResult, out: Path) -> dict[str, Any]:
    """The gap9 target's L2/L1 plan of ``res``: the L1 tiles of its training step (the footprint project
    of the plan without the link firmware, emitted, not built) and its L2 need, the plan's peak RAM (the
    link firmware and the reservoir included) plus the parameter tables."""
    from dataclasses import replace

    cm = emit_firmware(g, replace(res.plan, app=None), out, "gap9").emitted.cluster
    cm = replace(cm, l2_plan=res.memory.peak_ram_bytes)
    d = {k: v for k, v in cm.to_dict().items() if k != "steps"}
    return {**d, "fits": cm.l2_need <= cm.l2_available and cm.l1_bytes <= cm.l1_budget, "table": cm.table()}


def run(cfg: FlightsConfig) -> dict[str, Any]:
    say = print
    torch.manual_seed(0)
    t0 = time.perf_counter()
    tr_names, te_names = flight_names(cfg.train_flights, False), flight_names(cfg.test_flights, True)
    if set(tr_names) & set(te_names):
        raise ValueError(f"test flights {sorted(set(tr_names) & set(te_names))} are also training flights")
    train, test = load_flights(tr_names, cfg.data), load_flights(te_names, cfg.data)
    test = test.select(slice(0, None, cfg.test_every))
    scores = fit_footprint(train)
    assumed = edge_score(train, train.footprint)
    fp = scores[0].footprint
    train, test = with_footprint(train, fp), with_footprint(test, fp)
    say(
        f"[1/5] flights: train {','.join(tr_names)} ({len(train)} frames), test {','.join(te_names)} "
        f"({len(test)} frames, {int(test.tof_valid.sum()):,} valid zones; {time.perf_counter() - t0:.0f} s)"
    )
    say(
        f"      ToF footprint fitted on the training frames: {fp.zone_h}x{fp.zone_w}-px zones at rows "
        f"{fp.top}-{fp.top + fp.height - 1}, columns {fp.left}-{fp.left + fp.width - 1} (edge score "
        f"{scores[0].score:.2f}; assumed: {assumed.score:.2f})"
    )

    g = api.load(cfg.model)
    replay = ReplayConfig(slots=cfg.slots, replay=cfg.replay) if cfg.slots else None
    recipes = {
        o: ds.StreamRecipe(o, cfg.every, cfg.standardize, 0, replay, cfg.seed) for o in ("time", "shuffle")
    }
    n_stream = len(ds.stream_frames(train, recipes["time"]))
    updates = len(schedule(n_stream, replay)) // cfg.batch
    res, full = make_plans(g, cfg, fp, updates, replay)
    assert config_of(res.plan.app) == replay  # the firmware's reservoir is the one the recipe streams through
    link = link_memory(g, res.plan, res.plan.app) if res.plan.app else {}
    peak, full_peak = res.memory.peak_ram_bytes, full.memory.peak_ram_bytes
    say(
        f"[2/5] plan {res.plan.strategy} ({', '.join(lu.name for lu in res.plan.trained)}): peak RAM "
        f"{format_bytes(peak)} of the {format_bytes(cfg.budget)} budget, the full update "
        f"{format_bytes(full_peak)} ({full_peak / peak:.2f}x); {n_stream} frames, {updates} updates of "
        f"{cfg.batch}"
    )
    cats = res.memory.categories
    say("      " + ", ".join(f"{k} {v:,} B" for k, v in cats.items() if v))
    say("      serial_link: " + ", ".join(f"{k} {v:,} B" for k, v in link.items()))
    if replay is not None:
        say(
            f"      replay reservoir: {cfg.slots} samples, {cfg.replay} replayed per frame: "
            f"{link['replay']:,} B, in the plan's peak"
        )

    say(f"[3/5] baselines on the held-out frames ({cfg.model} pre-trained; simulator)")
    rows = baselines(graph_depth(g, cfg.standardize), train, test)
    level = blank_level(train)
    rm = running_mean(train, recipes["time"])  # what the device has after the time-ordered stream
    probe = test.select(np.linspace(0, len(test) - 1, min(len(test), PROBE_FRAMES)).astype(int))
    preds: dict[str, np.ndarray] = {}
    device: dict[str, Any] | None = None
    if cfg.blanked:
        sim_b = adapt(g, res, blanked(train, level), recipes["shuffle"])
        preds["blanked"] = zone_predictions(ds.sim_depth(sim_b, cfg.standardize), blanked(test, level))
        rows["blanked"] = zone_rmse(preds["blanked"], test)
    for o in cfg.orders:
        t1 = time.perf_counter()
        say(f"[4/5] adapt, {ORDER_NAMES[o]}: {len(schedule(n_stream, replay))} training samples (simulator)")
        sim = adapt(g, res, train, recipes[o])
        name = f"adapted, {ORDER_NAMES[o]}"
        preds[name] = zone_predictions(ds.sim_depth(sim, cfg.standardize), test)
        rows[name] = zone_rmse(preds[name], test)
        say(f"      {time.perf_counter() - t1:.0f} s")
        if cfg.qemu and o == "time":
            say(f"      the same on the emulated device ({BOARD}, QEMU): its reservoir draws the schedule")
            trained, device = on_device(g, res, train, recipes[o], sim, cfg, probe, rm)
            preds[f"{name} (device)"] = zone_predictions(graph_depth(trained, cfg.standardize), test)
            device["zone_rmse_m"] = rows[f"{name} (device)"] = zone_rmse(preds[f"{name} (device)"], test)
            device["simulator_zone_rmse_m"] = rows[name]
            say(
                f"      device vs simulator: parameters differ by {device['param_rel_err_vs_simulator']:.1e} "
                f"(relative); zone RMSE {device['zone_rmse_m']['all']:.3f} m on the device, "
                f"{rows[name]['all']:.3f} m in the simulator; {device['seconds']:.0f} s"
            )
            if "blend_rel_err_vs_host" in device:
                say(
                    f"      INFER BLEND on {len(probe)} held-out frames vs the host's blend: "
                    f"{device['blend_rel_err_vs_host']:.1e} (relative)"
                )
    # the network's zones shrunk toward the running mean of the streamed zones (the device's INFER BLEND):
    # a * net + (1 - a) * mean, for every a of a grid (to choose a on the tuning split), and the rows of
    # cfg.blend's a (the image-free control: blanked)
    curves = {
        k: {f"{a:.1f}": zone_rmse(blend_m(p, rm, a), test) for a in BLEND_GRID} for k, p in preds.items()
    }
    if cfg.blend is not None:
        for k in list(preds):
            rows[blend_row(k, cfg.blend)] = zone_rmse(blend_m(preds[k], rm, cfg.blend), test)
    gap9 = {}
    if cfg.gap9:
        say("[5/5] GAP9 memory (gap9 target: L2 1.5 MB, L1 tiles)")
        for name, r in (("plan", res), ("full_update", full)):
            try:
                gap9[name] = gap9_memory(g, r, cfg.out / f"gap9-{name}")
            except Exception as e:
                gap9[name] = {"fits": False, "error": str(e)}
            first = gap9[name].get("table", gap9[name].get("error", "")).splitlines()[:2]
            say(
                f"      {name}: "
                + ("fits" if gap9[name]["fits"] else "does NOT fit")
                + "; "
                + "; ".join(first)
            )
    say("zone RMSE (m) on the held-out frames, per flight type:")
    say(format_table(rows))
    base = [b for b in BASELINES if b in rows]
    if cfg.blend is not None and "blanked" in rows:
        base.append(blend_row("blanked", cfg.blend))
    best = min(base, key=lambda k: rows[k]["all"] or np.inf)

    def shown(name: str) -> str:  # the row a model is judged by: blended when the run blends
        return blend_row(name, cfg.blend) if cfg.blend is not None else name

    adapted_row = shown(f"adapted, {ORDER_NAMES[cfg.orders[0]]}")
    main = rows[adapted_row]["all"]
    ratio = (main or np.nan) / (rows[best]["all"] or np.nan)
    say(f"{adapted_row} / best baseline ({best}): {ratio:.3f} (target <= 0.85)")
    say(
        "shrunk toward the running zone mean, a * net + (1 - a) * mean, all flights: "
        + "; ".join(
            f"{k}: " + " ".join(f"{a}:{v['all']:.3f}" for a, v in c.items()) for k, c in curves.items()
        )
    )
    keep = None
    if set(cfg.orders) == {"time", "shuffle"}:
        pre = rows["pretrained"]["all"]
        shuf, tim = (rows[shown(f"adapted, {k}")]["all"] for k in ("shuffled", "time order"))
        keep = (pre - tim) / (pre - shuf) if pre != shuf else None  # type: ignore[operator]
        say(f"time order keeps {keep:.0%} of the shuffled improvement (target >= 90%)")
    result = {
        "demo": "depth",
        "data": "tof_drone_flights",
        "train_flights": tr_names,
        "test_flights": te_names,
        "test_frames": len(test),
        "test_valid_zones": int(test.tof_valid.sum()),
        "footprint": asdict(fp),
        "recipe": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k != "extra"},
        "plan_layers": [lu.name for lu in res.plan.trained],
        "budget_bytes": cfg.budget,
        "peak_ram_bytes": peak,
        "full_update_peak_ram_bytes": full_peak,
        "memory_categories": cats,
        "serial_link_bytes": link,
        "reservoir_bytes": link.get("replay", 0),
        "stream_frames": n_stream,
        "updates": updates,
        "zone_rmse_m": rows,
        "best_baseline": best,
        "adapted_row": adapted_row,
        "blend_curves": curves,
        "ratio_to_best_baseline": ratio,
        "time_order_keeps": keep,
        "device": device,
        "gap9": {k: {kk: vv for kk, vv in v.items() if kk != "table"} for k, v in gap9.items()},
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
