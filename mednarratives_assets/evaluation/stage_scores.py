"""Pipeline output scored against the demo corpus's ground truth (used by tests and benchmarks)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from mednarratives_assets.spoken_text import strip_punctuation

BOUNDARY_TOLERANCE_S = 0.5


def match_boundaries(predicted: list[float], truth: list[float], tolerance: float) -> int:
    """Predicted boundaries paired one to one with a truth boundary within `tolerance`, closest first."""
    pairs = sorted((abs(p - t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth))
    used_p, used_t = set(), set()
    for gap, i, j in pairs:
        if gap <= tolerance and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / max(max(a[1], b[1]) - min(a[0], b[0]), 1e-9)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    inter_w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@dataclass
class ChunkScore:
    """Stable chunks against the truth's, summed over lectures.

    Boundaries: starts and ends of predicted chunks against those of the truth's stable chunks,
    matched one to one within 0.5 s; the video's first and last half second are left out, since
    every video starts and ends there. A predicted chunk stands for the truth chunk it overlaps
    with temporal IoU >= 0.5. Medical recall is over the truth's stable medical chunks (image
    slides), precision over the chunks called medical.
    """

    boundaries_matched: int = 0
    boundaries_predicted: int = 0
    boundaries_truth: int = 0
    medical_called: int = 0
    medical_called_right: int = 0
    medical_truth: int = 0
    medical_found: int = 0
    region_ious: list[float] = field(default_factory=list)

    def add(self, rows: list[dict], truth: dict) -> None:
        """One lecture: `rows` as stages.stable_chunks.chunk_video returns them, `truth` its JSON."""
        duration = truth["duration_s"]
        stable = [c for c in truth["chunks"] if c["stable"]]

        def inner(spans: list[tuple[float, float]]) -> list[float]:
            return [x for s in spans for x in s if BOUNDARY_TOLERANCE_S < x < duration - BOUNDARY_TOLERANCE_S]

        predicted = inner([(r["start_s"], r["end_s"]) for r in rows])
        expected = inner([(c["start_s"], c["end_s"]) for c in stable])
        self.boundaries_matched += match_boundaries(predicted, expected, BOUNDARY_TOLERANCE_S)
        self.boundaries_predicted += len(predicted)
        self.boundaries_truth += len(expected)

        def overlapping(row: dict) -> list[dict]:
            span = (row["start_s"], row["end_s"])
            return [c for c in stable if temporal_iou(span, (c["start_s"], c["end_s"])) >= 0.5]

        for row in rows:
            if row["is_medical"]:
                self.medical_called += 1
                self.medical_called_right += any(c["is_medical"] for c in overlapping(row))
        for chunk in (c for c in stable if c["is_medical"]):
            self.medical_truth += 1
            hits = [r for r in rows if chunk in overlapping(r)]
            self.medical_found += any(r["is_medical"] for r in hits)
            rect = chunk["image_rect"]
            for row in hits:
                found = (row["image_x"], row["image_y"], row["image_w"], row["image_h"])
                truth_rect = (rect["x"], rect["y"], rect["w"], rect["h"])
                self.region_ious.append(box_iou(found, truth_rect) if row["image_x"] is not None else 0.0)

    @property
    def boundary_precision(self) -> float:
        return self.boundaries_matched / max(self.boundaries_predicted, 1)

    @property
    def boundary_recall(self) -> float:
        return self.boundaries_matched / max(self.boundaries_truth, 1)

    @property
    def boundary_f1(self) -> float:
        p, r = self.boundary_precision, self.boundary_recall
        return 2 * p * r / max(p + r, 1e-9)

    @property
    def medical_precision(self) -> float:
        return self.medical_called_right / max(self.medical_called, 1)

    @property
    def medical_recall(self) -> float:
        return self.medical_found / max(self.medical_truth, 1)


@dataclass
class TraceScore:
    """Cursor traces against the truth's pointer, over every sample of the traced chunks.

    A sample is the frame nearest its time. Where the truth's pointer is visible, coverage is
    the share of samples with a trace point and the hotspot error is measured in pixels of a
    720p frame; where it is not, any point is a false positive. The signed offsets (point minus
    hotspot) show a bias: a detector that learned another hotspot errs in one direction.
    """

    visible_samples: int = 0
    covered: int = 0
    hidden_samples: int = 0
    false_positives: int = 0
    errors_720p: list[float] = field(default_factory=list)
    offsets_720p: list[tuple[float, float]] = field(default_factory=list)

    def add(self, points: list[dict], sample_times: list[float], truth: dict) -> None:
        """One lecture: trace rows (t_s, x_px, y_px) and the times of every sample that was traced."""
        cursor, fps, scale = truth["cursor"], truth["fps"], 720 / truth["height"]
        by_time = {round(p["t_s"], 3): p for p in points}
        for t in sample_times:
            frame = min(round(t * fps), len(cursor["visible"]) - 1)
            point = by_time.get(round(t, 3))
            if cursor["visible"][frame]:
                self.visible_samples += 1
                if point is not None:
                    self.covered += 1
                    dx, dy = point["x_px"] - cursor["x"][frame], point["y_px"] - cursor["y"][frame]
                    self.errors_720p.append(math.hypot(dx, dy) * scale)
                    self.offsets_720p.append((dx * scale, dy * scale))
            else:
                self.hidden_samples += 1
                self.false_positives += point is not None

    @property
    def coverage(self) -> float:
        return self.covered / max(self.visible_samples, 1)

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / max(self.hidden_samples, 1)

    @property
    def median_error_px(self) -> float:
        return statistics.median(self.errors_720p) if self.errors_720p else math.inf

    def within(self, px: float) -> float:
        """Share of the points (on a visible pointer) within `px` pixels of the hotspot, at 720p."""
        return sum(e <= px for e in self.errors_720p) / max(len(self.errors_720p), 1)

    @property
    def median_offset_px(self) -> tuple[float, float]:
        """The median signed (dx, dy) at 720p, of points within 12 px (farther ones are misses, not bias)."""
        near = [o for o, e in zip(self.offsets_720p, self.errors_720p, strict=True) if e <= 12]
        if not near:
            return (math.nan, math.nan)
        return (statistics.median(o[0] for o in near), statistics.median(o[1] for o in near))


def _words(text: str) -> list[str]:
    return [w for w in (strip_punctuation(t).lower() for t in text.replace("-", " ").split()) if w]


def _corner_box(box: list[float]) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) as (x, y, w, h)."""
    return box[0], box[1], box[2] - box[0], box[3] - box[1]


@dataclass
class NarrativeScore:
    """Boxes, phrases, captions and domains against the truth, summed over lectures.

    - Box IoU: each truth ROI against the box whose dwell overlaps the ROI's pointing time most
      (0 when none does).
    - Alignment: each truth ROI's phrase is looked up among the boxes' phrases (the box whose
      phrase holds the most of its words, at least 60%); right when that box holds the ROI's centre.
    - Caption recall: the truth's words of each still medical chunk found in the caption of the
      chunk that overlaps it with temporal IoU >= 0.5, counted with repeats.
    - Domain: that chunk's pair domain against the truth image's modality.
    - Pairs: the truth's still medical chunks that got a pair.
    - Box precision: boxes at IoU >= 0.5 with some truth ROI, of all boxes.
    """

    roi_ious: list[float] = field(default_factory=list)
    roi_aligned: list[bool] = field(default_factory=list)
    n_boxes: int = 0
    n_boxes_on_a_roi: int = 0
    truth_words: int = 0
    recalled_words: int = 0
    domains_right: int = 0
    domains_total: int = 0
    medical_slides: int = 0

    def add(self, truth: dict, chunks: list[dict], boxes: list[dict], pairs: dict[int, dict]) -> None:
        """One lecture: its medical chunk rows (start_s, end_s, chunk_index), box rows (x1_px ... y2_px,
        start_s, end_s, phrase) and pairs by chunk_index (corrected_caption, domain)."""
        rois = truth["rois"]
        corners = [(b["x1_px"], b["y1_px"], b["x2_px"], b["y2_px"]) for b in boxes]
        for roi in rois:
            span = (roi["start_s"], roi["end_s"])
            overlaps = [max(0.0, min(b["end_s"], span[1]) - max(b["start_s"], span[0])) for b in boxes]
            best = max(range(len(boxes)), key=overlaps.__getitem__, default=None)
            hit = best is not None and overlaps[best] > 0
            self.roi_ious.append(
                box_iou(_corner_box(corners[best]), _corner_box(roi["box_px"])) if hit else 0.0
            )
            wanted = [w for w in _words(roi["phrase"]) if w != "this"]
            cover = [sum(w in _words(b["phrase"] or "") for w in wanted) / len(wanted) for b in boxes]
            named = max(range(len(boxes)), key=lambda i: (cover[i], overlaps[i]), default=None)
            cx, cy = (roi["box_px"][0] + roi["box_px"][2]) / 2, (roi["box_px"][1] + roi["box_px"][3]) / 2
            self.roi_aligned.append(
                named is not None
                and cover[named] >= 0.6
                and corners[named][0] <= cx <= corners[named][2]
                and corners[named][1] <= cy <= corners[named][3]
            )
        self.n_boxes += len(boxes)
        self.n_boxes_on_a_roi += sum(
            any(box_iou(_corner_box(c), _corner_box(r["box_px"])) >= 0.5 for r in rois) for c in corners
        )
        for chunk in (c for c in truth["chunks"] if c["is_medical"] and c["stable"]):
            said = [w["word"] for w in truth["words"] if w["chunk_index"] == chunk["chunk_index"]]
            expected = _words(" ".join(said))
            self.truth_words += len(expected)
            self.medical_slides += 1
            span = (chunk["start_s"], chunk["end_s"])
            found = [c for c in chunks if temporal_iou((c["start_s"], c["end_s"]), span) >= 0.5]
            pair = pairs.get(found[0]["chunk_index"]) if found else None
            if pair is None:
                continue
            heard = _words(pair["corrected_caption"])
            self.recalled_words += sum(min(expected.count(w), heard.count(w)) for w in set(expected))
            self.domains_total += 1
            modality = chunk["image"]["modality"]
            self.domains_right += pair["domain"] == (modality if modality != "nuclear medicine" else "other")

    @property
    def mean_iou(self) -> float:
        return statistics.fmean(self.roi_ious) if self.roi_ious else 0.0

    def iou_at_least(self, threshold: float) -> float:
        return sum(i >= threshold for i in self.roi_ious) / max(len(self.roi_ious), 1)

    @property
    def alignment_accuracy(self) -> float:
        return sum(self.roi_aligned) / max(len(self.roi_aligned), 1)

    @property
    def caption_recall(self) -> float:
        return self.recalled_words / max(self.truth_words, 1)

    @property
    def box_precision(self) -> float:
        return self.n_boxes_on_a_roi / max(self.n_boxes, 1)

    @property
    def domain_accuracy(self) -> float:
        return self.domains_right / max(self.domains_total, 1)

    @property
    def paired_share(self) -> float:
        """Still medical slides of the truth that got a pair (each paired one is scored for its domain)."""
        return self.domains_total / max(self.medical_slides, 1)
