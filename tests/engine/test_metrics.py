"""engine.metrics against scikit-learn, numpy and hand-computed values."""

from __future__ import annotations

import csv
import itertools
import json
import math

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.utils.class_weight import compute_sample_weight

from engine.metrics import (
    calibration_bins,
    classification_report,
    confusion_matrix_csv,
    confusion_matrix_png,
    expected_calibration_error,
    format_mean_std,
    map_class,
    map_image,
    multilabel_report,
    reliability_diagram,
    roc_curves_png,
    summarize_folds,
    top_k_weighted_accuracy,
)

N_CLASSES = 6
NAMES = [f"class {c}" for c in range(N_CLASSES)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _random_problem(seed: int, n: int = 300, n_classes: int = N_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced labels and informative-but-imperfect softmax outputs."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(n_classes, 2.0))
    y = rng.choice(n_classes, size=n, p=prior)
    y[:n_classes] = np.arange(n_classes)  # every class present
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    return y, _softmax(logits)


# ----------------------------------------------------------------- single-label report vs scikit-learn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_report_matches_sklearn(seed: int) -> None:
    y, p = _random_problem(seed)
    pred = p.argmax(axis=1)
    labels = list(range(N_CLASSES))
    r = classification_report(y, p, NAMES, k=(1, 2, 3))

    assert r.accuracy == pytest.approx(accuracy_score(y, pred))
    assert r.balanced_accuracy == pytest.approx(balanced_accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        prec, rec, f1, _ = precision_recall_fscore_support(
            y, pred, labels=labels, average=avg, zero_division=0
        )
        assert getattr(r, f"{avg}_precision") == pytest.approx(prec)
        assert getattr(r, f"{avg}_recall") == pytest.approx(rec)
        assert getattr(r, f"{avg}_f1") == pytest.approx(f1)
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    np.testing.assert_allclose([c.precision for c in r.per_class], prec)
    np.testing.assert_allclose([c.recall for c in r.per_class], rec)
    np.testing.assert_allclose([c.f1 for c in r.per_class], f1)
    assert [c.support for c in r.per_class] == support.tolist()
    assert [c.name for c in r.per_class] == NAMES

    balanced = compute_sample_weight("balanced", y)
    for k in (1, 2, 3):
        expected = top_k_accuracy_score(y, p, k=k, labels=labels)
        assert r.top_k_accuracy[k] == pytest.approx(expected)
        # The Skin-10 paper's frequency weighting collapses to plain top-k accuracy.
        assert r.top_k_weighted_accuracy[k] == pytest.approx(expected)
        assert r.top_k_balanced_accuracy[k] == pytest.approx(
            top_k_accuracy_score(y, p, k=k, labels=labels, sample_weight=balanced)
        )
    assert r.top_k_balanced_accuracy[1] == pytest.approx(r.balanced_accuracy)

    np.testing.assert_array_equal(r.confusion, confusion_matrix(y, pred, labels=labels))
    per_class_auc = [roc_auc_score(y == c, p[:, c]) for c in labels]
    np.testing.assert_allclose([c.auroc for c in r.per_class], per_class_auc)
    assert r.macro_auroc == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert r.malignancy is None
    assert 0.0 <= r.ece <= 1.0


@pytest.mark.filterwarnings("error")
def test_absent_class_keeps_its_row_and_is_json_safe() -> None:
    y, p = _random_problem(3)
    keep = y != 4
    y, p = y[keep], p[keep]
    pred = p.argmax(axis=1)
    assert (pred == 4).any()  # predicted but never true: the case sklearn warns about
    r = classification_report(y, p, NAMES, malignant=[False, True, False, False, True, False])

    assert r.confusion.shape == (N_CLASSES, N_CLASSES)
    assert r.per_class[4].support == 0
    assert r.per_class[4].recall == 0.0
    assert math.isnan(r.per_class[4].auroc)
    assert r.macro_auroc == pytest.approx(np.mean([r.per_class[c].auroc for c in (0, 1, 2, 3, 5)]))
    macro = precision_recall_fscore_support(y, pred, labels=range(N_CLASSES), average="macro", zero_division=0)
    assert r.macro_f1 == pytest.approx(macro[2])
    assert r.balanced_accuracy == pytest.approx(np.mean([r.per_class[c].recall for c in (0, 1, 2, 3, 5)]))

    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["per_class"][4]["auroc"] is None
    assert back["top_k_accuracy"]["2"] == pytest.approx(r.top_k_accuracy[2])
    assert back["confusion"] == r.confusion.tolist()
    assert set(back["malignancy"]) >= {"sensitivity", "specificity", "auroc", "accuracy", "f1"}


def test_invalid_inputs_raise() -> None:
    y, p = _random_problem(0, n=20)
    with pytest.raises(ValueError, match="outside"):
        classification_report(np.where(y == 0, N_CLASSES, y), p, NAMES)
    with pytest.raises(ValueError, match="class names"):
        classification_report(y, p, NAMES[:-1])
    with pytest.raises(ValueError, match="flags"):
        classification_report(y, p, NAMES, malignant=[True])


def test_top_k_weighted_accuracy_reproduces_skin10_table_iv() -> None:
    """Table II test counts and Table IV per-class ResNet50 top-1 accuracies give 'Overall' 74.75."""
    counts = [399, 239, 145, 826, 127, 98, 242, 291, 100, 87]
    per_class = [76.94, 54.39, 61.38, 85.84, 61.42, 96.94, 61.16, 75.26, 83.00, 58.62]
    ys, rows = [], []
    for c, (n, acc) in enumerate(zip(counts, per_class, strict=True)):
        hits = round(n * acc / 100)
        for i in range(n):
            target = c if i < hits else (c + 1) % 10
            rows.append(np.where(np.arange(10) == target, 0.91, 0.01))
            ys.append(c)
    y, p = np.array(ys), np.array(rows)
    assert 100 * top_k_weighted_accuracy(y, p, 1) == pytest.approx(74.75, abs=0.01)
    assert 100 * top_k_weighted_accuracy(y, p, 1, "balanced") == pytest.approx(np.mean(per_class), abs=0.05)


def test_malignant_grouping_sums_probabilities() -> None:
    # classes: melanoma (malignant), nevus (benign), BCC (malignant)
    y = np.array([0, 1, 1, 2, 2])
    p = np.array(
        [
            [0.3, 0.4, 0.3],  # argmax says nevus, but malignant mass 0.6 -> TP
            [0.1, 0.8, 0.1],  # 0.2 -> TN
            [0.5, 0.3, 0.2],  # 0.7 -> FP
            [0.1, 0.7, 0.2],  # 0.3 -> FN
            [0.0, 0.1, 0.9],  # 0.9 -> TP
        ]
    )
    m = classification_report(y, p, ["mel", "nev", "bcc"], malignant=[True, False, True]).malignancy
    assert m is not None
    assert m.sensitivity == pytest.approx(2 / 3)
    assert m.specificity == pytest.approx(1 / 2)
    assert m.precision == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.auroc == pytest.approx(4 / 6)  # pairs (pos > neg): .6>.2, .3>.2, .9>.2, .9>.7
    assert (m.n_malignant, m.n_benign) == (3, 2)
    assert m.confusion.tolist() == [[1, 1], [1, 2]]


# ----------------------------------------------------------------------------------- multi-label


def _random_multilabel(seed: int, n: int = 80, n_classes: int = 7) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_classes)) < 0.3).astype(int)
    y[:, -1] = 0  # a class with no positive at all: must be skipped by mAP-class
    probs = np.clip(0.35 * y + rng.random((n, n_classes)) * 0.7, 0, 1)
    mask = rng.random((n, n_classes)) > 0.2
    return y, probs, mask


def test_map_class_matches_sklearn_on_known_entries() -> None:
    y, probs, mask = _random_multilabel(0)
    aps = [
        average_precision_score(y[mask[:, c], c], probs[mask[:, c], c])
        for c in range(y.shape[1])
        if y[mask[:, c], c].sum() > 0
    ]
    assert len(aps) == y.shape[1] - 1
    names = [f"l{c}" for c in range(y.shape[1])]
    r = multilabel_report(y, probs, names, mask=mask)
    assert r.map_class == pytest.approx(np.mean(aps))
    assert map_class(y, probs, mask) == pytest.approx(np.mean(aps))
    assert r.n_classes_scored == len(aps)
    assert math.isnan(r.per_class[-1].ap)
    # Unknown entries are ignored: scrambling them changes nothing.
    y2 = np.where(mask, y, 1 - y)
    probs2 = np.where(mask, probs, 1 - probs)
    assert multilabel_report(y2, probs2, names, mask=mask).to_dict() == r.to_dict()


def test_map_image_hand_example() -> None:
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    probs = np.array([[0.9, 0.8, 0.3, 0.1], [0.5, 0.4, 0.2, 0.1], [0.9, 0.1, 0.1, 0.1]])
    mask = np.ones_like(y, dtype=bool)
    # image 0: ranking +,-,+,- -> AP = (1/1 + 2/3) / 2; image 1: positive ranked 2nd -> 1/2; image 2: skipped
    assert map_image(y, probs, mask) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    mask[1, 0] = False  # the label that outranked image 1's positive is unknown -> AP 1
    r = multilabel_report(y, probs, ["a", "b", "c", "d"], mask=mask)
    assert r.map_image == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert r.n_images_scored == 2


def test_multilabel_macro_f1_matches_sklearn_without_mask() -> None:
    y, probs, _ = _random_multilabel(1)
    names = [f"l{c}" for c in range(y.shape[1])]
    r = multilabel_report(y, probs, names, threshold=0.6)
    pred = (probs >= 0.6).astype(int)
    assert r.macro_f1 == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    np.testing.assert_allclose([c.f1 for c in r.per_class], f1_score(y, pred, average=None, zero_division=0))
    json.dumps(r.to_dict(), allow_nan=False)


def test_multilabel_rejects_non_binary_known_targets() -> None:
    y = np.array([[1, 2], [0, 1]])
    with pytest.raises(ValueError, match="0 or 1"):
        multilabel_report(y, np.full((2, 2), 0.5), ["a", "b"])
    mask = np.array([[True, False], [True, True]])
    multilabel_report(y, np.full((2, 2), 0.5), ["a", "b"], mask=mask)  # the 2 is unknown: fine


# ----------------------------------------------------------------------------------- calibration


def test_ece_zero_when_perfectly_calibrated() -> None:
    # confidence 0.8 everywhere and exactly 80% correct; plus fully confident, always right.
    probs = np.array([[0.8, 0.2]] * 10 + [[0.0, 1.0]] * 5)
    y = np.array([0] * 8 + [1] * 2 + [1] * 5)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computed() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # 5 bins, right-closed: 0.9 -> (0.8,1] acc 1; 0.8, 0.7 -> (0.6,0.8] acc .5 conf .75; 0.6 -> (0.4,0.6] acc 1
    expected = 0.25 * 0.1 + 0.5 * 0.25 + 0.25 * 0.4
    assert expected_calibration_error(probs, y, n_bins=5) == pytest.approx(expected)
    assert calibration_bins(probs, y, n_bins=5).counts.tolist() == [0, 0, 1, 2, 1]
    # binary (N,) positive-class probabilities give the same answer
    assert expected_calibration_error(probs[:, 1], y, n_bins=5) == pytest.approx(expected)


def test_ece_matches_reference_loop() -> None:
    y, p = _random_problem(5, n=500)
    conf, correct = p.max(1), p.argmax(1) == y
    edges = np.linspace(0, 1, 16)
    ref = 0.0
    for lo, hi in itertools.pairwise(edges):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ref += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    assert expected_calibration_error(p, y) == pytest.approx(ref)
    assert classification_report(y, p, NAMES).ece == pytest.approx(ref)


# ------------------------------------------------------------------------------------ artifacts


def _assert_png(path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] > 50
        assert img.size[1] > 50


def test_writers_produce_readable_files(tmp_path) -> None:
    y, p = _random_problem(0, n=120)
    names = [*NAMES[:-1], "name, with comma"]
    cm = confusion_matrix(y, p.argmax(1), labels=range(N_CLASSES))

    csv_path = confusion_matrix_csv(cm, names, tmp_path / "out" / "cm.csv")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][1:] == names
    assert [r[0] for r in rows[1:]] == names
    assert np.array([[int(v) for v in r[1:]] for r in rows[1:]]).tolist() == cm.tolist()

    _assert_png(confusion_matrix_png(cm, names, tmp_path / "cm.png"))
    _assert_png(confusion_matrix_png(cm, names, tmp_path / "cm_counts.png", normalize=False))
    _assert_png(roc_curves_png(y, p, names, tmp_path / "roc.png"))
    _assert_png(reliability_diagram(p, y, tmp_path / "rel.png"))
    big = np.eye(25, dtype=int) * 3
    _assert_png(confusion_matrix_png(big, [f"c{i}" for i in range(25)], tmp_path / "big.png"))


# ---------------------------------------------------------------------------------------- folds


def test_summarize_folds_against_numpy() -> None:
    folds = [classification_report(*_random_problem(s, n=100), NAMES).to_dict() for s in range(4)]
    folds[2]["per_class"][1]["auroc"] = None  # an undefined value in one fold is left out
    s = summarize_folds(folds)
    acc = np.array([f["accuracy"] for f in folds])
    assert s["accuracy"]["mean"] == pytest.approx(acc.mean())
    assert s["accuracy"]["std"] == pytest.approx(acc.std(ddof=1))
    assert s["accuracy"]["n"] == 4
    top2 = np.array([f["top_k_accuracy"]["2"] for f in folds])
    assert s["top_k_accuracy.2"]["std"] == pytest.approx(top2.std(ddof=1))
    auc = np.array([f["per_class"][1]["auroc"] for i, f in enumerate(folds) if i != 2])
    assert s["per_class.class 1.auroc"]["mean"] == pytest.approx(auc.mean())
    assert s["per_class.class 1.auroc"]["n"] == 3
    assert not any(k.startswith(("confusion", "class_names")) for k in s)

    single = summarize_folds([{"accuracy": 0.5}])
    assert single["accuracy"]["mean"] == 0.5
    assert math.isnan(single["accuracy"]["std"])


def test_format_mean_std() -> None:
    assert format_mean_std(0.745, 0.025) == "74.5 ± 2.5"
    assert format_mean_std(0.78849, 0.0051) == "78.8 ± 0.5"
    assert format_mean_std(0.5, float("nan")) == "50.0"
    assert format_mean_std(None, None) == "n/a"
    assert format_mean_std(0.8, 0.01, percent=False, digits=2) == "0.80 ± 0.01"
