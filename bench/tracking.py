"""The tracker alone, offline: how confirmed boxes carried a second land, in the annotator's seconds.

    .venv/bin/python bench/tracking.py [--seed-offset N] [--video-seconds 40] [--sources both1|prev1|prev2|...]
                                       [--refine [--refiner-frames N]] [--start-noise 0.035]

bench/assist.py is the figure of merit, but one run takes minutes and moves by about 0.01 from
run to run, more than most changes to the tracker. This bench isolates the tracker and is
deterministic. For each of bench/assist.py's generated videos (same looks, seeds, shots and
objects), every candidate frame (one a second per shot, JPEG-compressed, as ingest stores
them) gets the ground truth of the candidate frames a second before and after it carried into
it (``propagate_boxes``, then ``fuse_estimates``), as a frame between two labelled ones gets
them in the app, through the video's frames between (``--flow-step-seconds``, as the app
follows them; 0 for one jump). bench/assist_sim.py's annotator then accepts, fixes, rejects
and draws; the boxes shown are those whose confidence reaches a threshold. The app's
calibration learns where to cut from each project's decisions, so the figure is the cost at
the best of a few thresholds (and, for reference, with every box shown).

With ``--refine`` the fused boxes are then moved by a box refiner (proposals.training.refiner)
learned from the video's own labelled frames, as a project's detector run learns one: the
candidate frames at even places in their shot train the refiner used on the odd ones, and back,
so no frame's own truth refines its boxes.

With ``--start-noise`` the labelled frames' boxes are first moved and resized at random
(:func:`loosened`), as loose as the boxes a person accepts in the app: an accepted box is a
proposal that was good enough (IoU >= 0.7), not the truth, and it is what the next frames are
followed from. 0.035 gives a mean IoU of 0.89 with the truth, as accepted followed boxes had in
session 31's kept bench/assist.py runs (0.887 counter, 0.877 night).

Between a labelled frame on each side, the estimates are also bridged as the app bridges them
(:mod:`proposals.bridging`: the line between an object's two labelled boxes backs the estimate it
agrees with, or is a box of its own where it agrees with neither); ``--no-bridge`` fuses them
only, as before session 32. The fused boxes are then pulled a third of the way to the extent of
their object's colours as its labelled frames show them (``--no-colour``: not, as before session
36), and, after the refiner, a third of the way to their own outline in the frame's pixels, as the
app pulls them (:mod:`proposals.outline`); ``--no-outline`` leaves them, as before session 34. The app calibrates each source of proposals apart, so the boxes of
the lines get a threshold of their own (possibly: never shown).

Also per video: the share of carried boxes that end on something else (IoU < 0.5 with their own
object, where it is still visible), and milliseconds per frame pair.
Progress goes to stderr, then ONE JSON line; ``tracker_ratio`` is the worst video's best.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.assist import OBJECTS_PER_SHOT, SHORT_SHOT_SECONDS, VIDEO_LOOKS, VIDEO_SHOTS  # noqa: E402
from bench.assist_sim import MANUAL_SECONDS_PER_BOX, ActionKind, Shown, Truth, iou, plan_frame  # noqa: E402
from proposals.synthetic import write_synthetic_video  # noqa: E402
from proposals.training.data import TrainingFrame  # noqa: E402
from proposals.training.refiner import refine_boxes, train_box_refiner  # noqa: E402
from proposals.bridging import fuse_and_bridge  # noqa: E402
from proposals.outline import pulled_to_colour_outlines, pulled_to_own_outlines  # noqa: E402
from proposals.regions import objects_colour_models  # noqa: E402
from proposals.tracking import FLOW_STEP_SECONDS, frames_between, propagate_boxes  # noqa: E402

FPS = 25
STEP = FPS  # candidate frames one second apart, as ingest takes them
JPEG_QUALITY = 90  # as labeller.media.scan stores candidate frames
THRESHOLDS = (0.0, 0.1, 0.2, 0.3)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def candidate_frames(
    look: str, seed: int, seconds: float, folder: Path, step_frames: int = 0
) -> tuple[list, dict, dict]:
    """``(shots as lists of candidate frame indices, index -> RGB, index -> truths)``: candidate
    frames as stored (JPEG), and with ``step_frames`` every so many frames as decoded, to follow
    boxes through."""
    video = write_synthetic_video(
        folder / f"{look}.mp4", seconds=seconds, fps=FPS, width=640, height=360, n_shots=VIDEO_SHOTS, seed=seed,
        objects_per_shot=OBJECTS_PER_SHOT, look=look, short_shot_seconds=SHORT_SHOT_SECONDS,
    )
    bounds = list(zip([0, *video.cuts], [*video.cuts, video.frame_count]))
    shots = [list(range(start, end, STEP)) for start, end in bounds]
    wanted = {index for shot in shots for index in shot}
    through = {index for start, end in bounds for index in range(start, end, step_frames)} if step_frames else set()
    frames = {}
    with av.open(str(video.path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                stored = io.BytesIO()
                frame.to_image().save(stored, "JPEG", quality=JPEG_QUALITY)
                frames[index] = np.asarray(Image.open(stored).convert("RGB"))
            elif index in through:
                frames[index] = frame.to_ndarray(format="rgb24")
    return shots, frames, {index: video.boxes[index] for index in wanted}


def loosened(boxes: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``boxes`` (float32 [N, 4] xyxy) with their centres moved by a normal share ``noise`` of
    their size and each side's length scaled by exp(normal(0, 1.5 * noise)); 0 leaves them."""
    if not noise or not len(boxes):
        return boxes
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + rng.normal(0.0, noise, size.shape) * size
    size = size * np.exp(rng.normal(0.0, 1.5 * noise, size.shape))
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)


def carried_into(
    frames: dict, truths: dict, target: int, sources: list[int], labels: dict[str, int], step_frames: int = 0,
    start_noise: float = 0.0,
):
    """Per source frame ``(boxes, confidence, label ids)`` in ``target``, and each box's IoU with its
    own object there (None where that object is no longer visible); with ``step_frames``, followed
    through the video's frames between, as the app follows them; with ``start_noise``, from the
    source frame's boxes :func:`loosened` (the same way for a pair of frames in every run). Also,
    per source frame carried from (those with boxes), ``(source, float32 [N, 4] the boxes followed
    from)``."""
    carried, own_iou, starts = [], [], []
    visible = {truth.track_id: truth.box for truth in truths[target]}
    for source in sources:
        if not truths[source]:
            continue
        boxes = np.array([truth.box for truth in truths[source]], np.float32)
        boxes = loosened(boxes, start_noise, np.random.default_rng([source, target]))
        starts.append((source, boxes))
        between = [frames[index] for index in frames_between(source, target, step_frames) if index in frames]
        moved, confidence = propagate_boxes(frames[source], frames[target], boxes,
                                            seconds_apart=abs(target - source) / FPS, between=between)
        carried.append((moved, confidence, np.array([labels[truth.label] for truth in truths[source]])))
        for truth, box in zip(truths[source], moved.tolist()):
            own_iou.append(iou(tuple(box), visible[truth.track_id]) if truth.track_id in visible else None)
    return carried, own_iou, starts


def fused_into(target: int, carried: list, starts: list, bridge: bool, frames: dict | None = None):
    """The estimates fused as the app fuses them; with ``bridge``, between a labelled frame on
    each side, also interpolated (:func:`proposals.bridging.fuse_and_bridge`, as the app's
    neighbours are); with ``frames``, each pulled towards its object's colours as the labelled
    frames show them, as the app pulls them (:func:`proposals.regions.follow_neighbours`):
    ``(boxes, confidence, labels, interpolated)``. ``carried`` and ``starts`` as
    :func:`carried_into` returns them."""
    sides = [(source > target if bridge else None, abs(target - source) / FPS, start) for source, start in starts]
    boxes, confidence, labels, interpolated, rows = fuse_and_bridge(carried, sides)
    if frames is not None:
        models = objects_colour_models([(frames[source], start) for source, start in starts], rows, len(boxes))
        boxes = pulled_to_colour_outlines(frames[target], boxes, models)
    return boxes, confidence, labels, interpolated


# Which labelled frames each candidate frame's boxes come from, in candidate frames (seconds)
# before (-) and after (+) it. Between two labelled frames a second away is what most frames get
# in the app; keyframes are labelled in video order before the frames between them, so each is
# followed from one side, often over several seconds. The uneven pairs are other orders of the
# queue (the video's order with a far keyframe after: prev1+next4; the frames the models are least
# sure of first, which on a long shot is every other frame: prev2+next4, then both1), and the last
# two a third and a fourth labelled frame (bench/ASSIST.md, session 43).
SOURCES = {
    "both1": (-1, 1), "prev1": (-1,), "prev2": (-2,), "prev1+2": (-1, -2), "prev3": (-3,), "both2": (-2, 2),
    "prev1+next2": (-1, 2), "prev1+next4": (-1, 4), "prev2+next4": (-2, 4), "both1+prev2": (-1, 1, -2),
    "both1+2": (-1, 1, -2, 2),
}


REFINER_STEPS = 1000  # as a detector run in the app (LABELLER_REFINER_STEPS)


def fold_refiners(shots: list, frames: dict, truths: dict, most_frames: int = 0) -> dict:
    """candidate frame -> the refiner trained on the other fold's frames (see the module doc);
    ``most_frames``: at most that many of them, the first of each shot first, then the second,
    as a project labels its shots' keyframes first (0: all)."""
    fold_of = {index: position % 2 for shot in shots for position, index in enumerate(shot)}
    refiners = {}
    for fold in (0, 1):
        chosen = [index for index, other in fold_of.items() if other != fold]
        if most_frames:
            by_shot = [[index for index in shot if fold_of[index] != fold] for shot in shots]
            chosen = [shot[rank] for rank in range(max(map(len, by_shot), default=0))
                      for shot in by_shot if rank < len(shot)][:most_frames]
        training = [
            TrainingFrame(index, frames[index], np.array([t.box for t in truths[index]], np.float32).reshape(-1, 4),
                          np.zeros(len(truths[index]), np.int64), complete=True)
            for index in chosen
        ]
        net = train_box_refiner(training, steps=REFINER_STEPS, seed=fold).refiner
        refiners |= {index: net for index, other in fold_of.items() if other == fold}
    return refiners


def measure_video(
    look: str, seed: int, seconds: float, folder: Path, offsets=SOURCES["both1"], step_frames: int = 0,
    refine: bool = False, start_noise: float = 0.0, refiner_frames: int = 0, bridge: bool = True,
    outline: bool = True, colour: bool = True,
) -> dict:
    shots, frames, truths = candidate_frames(look, seed, seconds, folder, step_frames)
    labels = {name: number for number, name in enumerate(sorted({t.label for ts in truths.values() for t in ts}))}
    refiners = fold_refiners(shots, frames, truths, refiner_frames) if refine else {}
    # The app calibrates each source apart, so interpolated boxes get a threshold of their own
    # (infinite: never shown).
    cuts = [(threshold, own) for threshold in THRESHOLDS for own in (*THRESHOLDS, math.inf)]
    charged = {cut: 0.0 for cut in cuts}
    drawn = {cut: 0 for cut in cuts}
    rejected = {cut: 0 for cut in cuts}
    manual, own_ious, pairs, started = 0.0, [], 0, time.perf_counter()
    for shot in shots:
        for position, target in enumerate(shot):
            sources = [shot[position + side] for side in offsets if 0 <= position + side < len(shot)]
            if not sources:
                continue
            carried, own_iou, starts = carried_into(frames, truths, target, sources, labels, step_frames, start_noise)
            pairs += len(sources)
            own_ious += own_iou
            fused = fused_into(target, carried, starts, bridge, frames if colour else None)
            if refine and len(fused[0]):
                fused = (refine_boxes(refiners[target], frames[target], fused[0], fused[1]), *fused[1:])
            if outline:
                fused = (pulled_to_own_outlines(frames[target], fused[0]), *fused[1:])
            frame_truths = [Truth(tuple(t.box), labels[t.label]) for t in truths[target]]
            manual += MANUAL_SECONDS_PER_BOX * len(frame_truths)
            for cut in cuts:
                shown = [Shown(number, tuple(box), int(label), 1, "proposed")
                         for number, (box, score, label, interpolated) in enumerate(zip(*(a.tolist() for a in fused)))
                         if score >= (cut[1] if interpolated else cut[0])]
                plan = plan_frame(shown, frame_truths)
                charged[cut] += plan.seconds
                drawn[cut] += sum(action.kind is ActionKind.DRAW for action in plan.actions)
                rejected[cut] += sum(action.kind is ActionKind.REJECT for action in plan.actions)
    ratios = {cut: charged[cut] / manual for cut in cuts}
    best = min(cuts, key=lambda cut: (ratios[cut], cut))
    still_visible = [value for value in own_ious if value is not None]
    return {
        "seed": seed,
        "ratio_all_shown": round(ratios[(0.0, 0.0)], 4),
        "ratio_best": round(ratios[best], 4),
        "best_threshold": best[0],
        "best_interpolated_threshold": None if math.isinf(best[1]) else best[1],
        "drawn": drawn[best],
        "rejected": rejected[best],
        "lost_share": round(float(np.mean(np.array(still_visible) < 0.5)), 4) if still_visible else None,
        "ms_per_pair": round((time.perf_counter() - started) * 1000 / max(1, pairs), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-offset", type=int, default=0, help="add this to each look's seed: held-out videos")
    parser.add_argument("--video-seconds", type=float, default=40.0)
    parser.add_argument("--sources", default="both1", choices=sorted(SOURCES),
                        help="labelled frames carried from (default: a second before and after)")
    parser.add_argument("--flow-step-seconds", type=float, default=FLOW_STEP_SECONDS,
                        help="follow boxes through the video's frames this far apart, as the app does; 0: in one jump")
    parser.add_argument("--refine", action="store_true",
                        help="move the fused boxes by a box refiner learned from the video's other labelled frames")
    parser.add_argument("--start-noise", type=float, default=0.0,
                        help="loosen the labelled frames' boxes first, as accepted boxes are in the app (0.035)")
    parser.add_argument("--no-bridge", action="store_true",
                        help="fuse the two sides' estimates only, without interpolating (before session 32)")
    parser.add_argument("--no-outline", action="store_true",
                        help="leave the followed boxes where they are, not pulled to their outline (before session 34)")
    parser.add_argument("--no-colour", action="store_true",
                        help="leave the fused boxes where they are, not pulled to their object's colours (before session 36)")
    parser.add_argument("--refiner-frames", type=int, default=0,
                        help="with --refine: train each refiner on at most this many frames, shots' first ones first")
    args = parser.parse_args()
    step_frames = round(args.flow_step_seconds * FPS)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="labeller-bench-tracking-") as folder:
        for look, seed in VIDEO_LOOKS.items():
            figures[look] = measure_video(look, seed + args.seed_offset, args.video_seconds, Path(folder),
                                          SOURCES[args.sources], step_frames, args.refine, args.start_noise,
                                          args.refiner_frames, not args.no_bridge, not args.no_outline,
                                          not args.no_colour)
            log(f"{look}: {figures[look]}")
    print(json.dumps({
        "bench": "tracking",
        "tracker_ratio": max(video["ratio_best"] for video in figures.values()),
        "sources": args.sources,
        "flow_step_seconds": args.flow_step_seconds,
        "refine": args.refine,
        "start_noise": args.start_noise,
        "refiner_frames": args.refiner_frames,
        "bridge": not args.no_bridge,
        "outline": not args.no_outline,
        "colour": not args.no_colour,
        "videos": figures,
        "thresholds": list(THRESHOLDS),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
