"""Scoring with a trained detector: frame pairs, held-out evaluation, any video.

A score is the classifier's probability that a pair (t, t+1) was generated, in
[0, 1]. The classifier is trained on square crops, so a whole pair is scored the
way it was trained: cut into tiles of the crop size that cover the frame (the
last row and column aligned with the frame's edge), and the score is the sigmoid
of the tiles' mean logit. (Scoring the whole frame at once changes what the
network's borders and normalization see, and shifted every score of a tiny
test detector below 0.5 while ranking them perfectly.)
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edn.core.atomic import atomic_path
from edn.core.plots import png_figure
from edn.core.errors import EdnError
from edn.fake_detector.data import SubjectFrames, pair_tensors
from edn.fake_detector.metrics import DECISION_THRESHOLD, accuracy, average_precision, roc_auc, roc_curve

log = logging.getLogger(__name__)

METRICS_COLUMNS = ("split", "subject", "metric", "value", "pairs")
SCORES_COLUMNS = ("first_frame", "second_frame", "time_s", "score")


def tile_origins(length: int, tile: int) -> list[int]:
    """Starts of the fewest ``tile``-long windows that cover ``0 .. length - 1``, evenly spread,
    the first at 0 and the last ending at ``length`` ([0] when the tile is not shorter)."""
    if tile >= length:
        return [0]
    count = -(-length // tile)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tiles(pairs: torch.Tensor, tile: int | None) -> torch.Tensor:
    """[B, 6, H, W] -> [B, T, 6, h, w]: the tiles covering each pair (T = 1, the whole pair, for None)."""
    if tile is None:
        return pairs[:, None]
    height, width = pairs.shape[2:]
    h, w = min(tile, height), min(tile, width)
    windows = [pairs[:, :, y:y + h, x:x + w] for y in tile_origins(height, h) for x in tile_origins(width, w)]
    return torch.stack(windows, dim=1)


@torch.inference_mode()
def score_pairs(model: nn.Module, frames: np.ndarray, first: np.ndarray, device: torch.device, *,
                tile_size: int | None, batch_pairs: int = 16, progress: bool = False,
                what: str = "score") -> np.ndarray:
    """Scores float64 [len(first)] in [0, 1] of the pairs (t, t+1), t in ``first``: the sigmoid of
    the mean logit over ``tile_size`` tiles (the training crop size; None: the whole frame)."""
    from tqdm import tqdm

    first = np.asarray(first, dtype=np.int64)
    scores = np.empty(len(first), np.float64)
    for start in tqdm(range(0, len(first), batch_pairs), unit="batch", desc=what, leave=False,
                      disable=not progress or None):
        chunk = first[start:start + batch_pairs]
        windows = tiles(pair_tensors(frames, chunk), tile_size)
        logits = model(windows.flatten(0, 1).to(device)).float().view(len(chunk), -1)
        scores[start:start + len(chunk)] = torch.sigmoid(logits.mean(dim=1)).cpu().numpy()
    return scores


@dataclass(frozen=True)
class Scored:
    """Scores of one evaluation set: real pairs then generated pairs of the same frames."""

    split: str
    subject: str
    scores: np.ndarray
    is_generated: np.ndarray

    @property
    def pair_count(self) -> int:
        return len(self.scores)


def score_subject(model: nn.Module, subject: SubjectFrames, first: np.ndarray, split: str,
                  device: torch.device, *, tile_size: int | None, compressed: bool = False,
                  progress: bool = False) -> Scored:
    """The same pairs scored real and generated, raw or (``compressed``) after the H.264 round trip."""
    if compressed and not subject.has_compressed:
        raise ValueError(f"subject {subject.name}: no compressed copies")
    real_store = subject.real_compressed if compressed else subject.real
    generated_store = subject.generated_compressed if compressed else subject.generated
    real = score_pairs(model, real_store, first, device, tile_size=tile_size, progress=progress,
                       what=f"{subject.name} real")
    fake = score_pairs(model, generated_store, first, device, tile_size=tile_size, progress=progress,
                       what=f"{subject.name} generated")
    return Scored(split=split, subject=subject.name, scores=np.r_[real, fake],
                  is_generated=np.r_[np.zeros(len(real), bool), np.ones(len(fake), bool)])


def metric_rows(scored: Scored) -> list[dict]:
    """accuracy (at 0.5), average_precision, roc_auc, and the mean score of each class."""
    s, truth = scored.scores, scored.is_generated
    values = {
        "accuracy": accuracy(s, truth),
        "average_precision": average_precision(s, truth),
        "roc_auc": roc_auc(s, truth),
        "mean_score_real": float(s[~truth].mean()) if (~truth).any() else float("nan"),
        "mean_score_generated": float(s[truth].mean()) if truth.any() else float("nan"),
    }
    return [{"split": scored.split, "subject": scored.subject, "metric": name, "value": value,
             "pairs": scored.pair_count} for name, value in values.items()]


def write_metrics(path: str | os.PathLike, evaluations: list[Scored]) -> None:
    """The long metrics table (one row per split, subject and measure), atomically."""
    import pandas as pd

    rows = [row for scored in evaluations for row in metric_rows(scored)]
    with atomic_path(path) as temporary:
        pd.DataFrame(rows, columns=list(METRICS_COLUMNS)).to_csv(temporary, index=False, float_format="%.6g")


def write_roc_plot(path: str | os.PathLike, evaluations: list[Scored], title: str) -> None:
    """ROC curves of the evaluation sets (AUC and AP in the legend), PNG, atomically."""
    with png_figure(path, size=(5, 5)) as (_, axis):
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
        for scored in evaluations:
            fpr, tpr, _ = roc_curve(scored.scores, scored.is_generated)
            axis.step(fpr, tpr, where="post",
                      label=f"{scored.split} {scored.subject}: AUC {roc_auc(scored.scores, scored.is_generated):.3f}"
                            f", AP {average_precision(scored.scores, scored.is_generated):.3f} "
                            f"({scored.pair_count} pairs)")
        axis.set_xlim(-0.01, 1.01)  # a curve along an axis stays visible
        axis.set_ylim(-0.01, 1.01)
        axis.set_xlabel("false positive rate (real pairs called generated)")
        axis.set_ylabel("true positive rate (generated pairs found)")
        axis.set_title(title, fontsize=10)
        axis.legend(loc="lower right", fontsize=7)
        axis.grid(True, alpha=0.3)


@dataclass(frozen=True)
class VideoScores:
    """Per-pair scores of a video and the overall verdict (mean score vs 0.5)."""

    video: str
    fps: Fraction
    scores: np.ndarray

    @property
    def mean_score(self) -> float:
        return float(self.scores.mean())

    @property
    def verdict(self) -> str:
        return "generated" if self.mean_score >= DECISION_THRESHOLD else "real"

    def summary(self) -> str:
        return (f"{self.video}: {self.verdict} (mean score {self.mean_score:.3f} over {len(self.scores)} frame "
                f"pairs; {float(np.mean(self.scores >= DECISION_THRESHOLD)):.0%} of the pairs score >= "
                f"{DECISION_THRESHOLD})")


def score_video(model: nn.Module, options: dict, video: str | os.PathLike, device: torch.device, *,
                fps: Fraction | None = None, batch_pairs: int = 16, progress: bool = True) -> VideoScores:
    """Decode ``video`` to the detector's working size with its training fit, then score every pair.

    ``fps`` None keeps the video's own frame rate (a pair is two consecutive frames
    of the video as it is).
    """
    from edn.ingest.decode import decode_video
    from edn.ingest.frames import load_frames

    width, height = options["working_size"]
    with tempfile.TemporaryDirectory(prefix="edn-detect-") as scratch:
        frames_path, meta_path = Path(scratch) / "frames.npy", Path(scratch) / "meta.json"
        meta = decode_video(video, frames_path, meta_path, working_size=(width, height), fps=fps,
                            fit=options["fit"])
        frames = load_frames(frames_path)
        if len(frames) < 2:
            raise EdnError(f"video {str(video)!r}: {len(frames)} frame, a pair needs two")
        scores = score_pairs(model, frames, np.arange(len(frames) - 1), device, tile_size=options["crop_size"],
                             batch_pairs=batch_pairs, progress=progress, what="detect")
        del frames
    return VideoScores(video=str(video), fps=meta.fps_value, scores=scores)


def write_video_scores(path: str | os.PathLike, result: VideoScores) -> None:
    """One row per pair: its frames, the time of its first frame (s), its score; atomically."""
    import pandas as pd

    first = np.arange(len(result.scores))
    table = pd.DataFrame({"first_frame": first, "second_frame": first + 1,
                          "time_s": first / float(result.fps), "score": result.scores},
                         columns=list(SCORES_COLUMNS))
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")


def write_video_plot(path: str | os.PathLike, result: VideoScores) -> None:
    """Score against time, the 0.5 decision line and the mean; the verdict in the title. PNG, atomically."""
    times = np.arange(len(result.scores)) / float(result.fps)
    with png_figure(path, size=(8, 3)) as (_, axis):
        axis.plot(times, result.scores, linewidth=1.2, label="pair score")
        axis.axhline(DECISION_THRESHOLD, color="grey", linestyle=":", linewidth=1, label="decision (0.5)")
        axis.axhline(result.mean_score, color="tab:red", linestyle="--", linewidth=1,
                     label=f"mean {result.mean_score:.3f}")
        axis.set_ylim(-0.02, 1.02)
        axis.set_xlabel("time of the pair's first frame (s)")
        axis.set_ylabel("P(generated)")
        axis.set_title(f"{Path(result.video).name}: {result.verdict}", fontsize=10)
        axis.legend(loc="upper right", fontsize=7)
        axis.grid(True, alpha=0.3)
