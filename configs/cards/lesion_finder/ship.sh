#!/usr/bin/env bash
# Renders resources/models/lesion_finder.{onnx,md,cv.json} from the runs named below (run from the repo root once
# they exist: runs/ is not in git). Every section file is written by the command that measured it, except
# crop_compare_e10.md: the crop comparison as measured with the previous (10-epoch) finder, kept from its card;
# detection_compare.md: written by detect-cv --compare into runs/lesion_detector/compare.md (run of 2026-12-03), kept
# here since runs/ is not kept; input_size.md: the 192 / 224 px runs' per-fold figures, copied from their lesion_cv.json and logs.
set -e
cd "$(dirname "$0")/../../.."
C=configs/cards/lesion_finder
R=runs/lesion_finder_e30
SEC=()
[ -f $R/no_tta/lesion_cv.md ] && SEC+=(--section "Without the mirror average and hole filling (same fold models)=$R/no_tta/lesion_cv.md")
[ -f $R/threshold/threshold_cv.md ] && SEC+=(--section "The probability threshold (same fold models; chosen for each fold on the other folds' test photos)=$R/threshold/threshold_cv.md")
[ -f $C/detection_compare.md ] && SEC+=(--section "Detection-based classification (He et al.) against the whole photo, same folds=$C/detection_compare.md")
[ -f $C/input_size.md ] && SEC+=(--section "Input size (same folds and recipe)=$C/input_size.md")
[ -f $C/crop_compare_e10.md ] && SEC+=(--section "Whole photo, lesion crop or both (disease classifier, same folds)=$C/crop_compare_e10.md")
[ -f $C/speed.md ] && SEC+=(--section "Speed on this 2-core CPU=$C/speed.md")
[ -f $C/reading.md ] && SEC+=(--section "Reading of the results=$C/reading.md")
.venv/bin/python -m training.lesion_card $R --out resources/models "${SEC[@]}" \
  --command "OMP_NUM_THREADS=1 .venv/bin/dermviewer-train lesion-cv --masks ../shared/data/pad_ufes_20/masks --out $R --size 160 --epochs 30 --threads 1" \
  --command ".venv/bin/dermviewer-train lesion-cv --masks ../shared/data/pad_ufes_20/masks --rescore $R --no-tta --keep-holes --out $R/no_tta" \
  --command ".venv/bin/dermviewer-train lesion-cv --masks ../shared/data/pad_ufes_20/masks --rescore $R --thresholds 0.3 0.35 0.4 0.45 0.5 0.55 0.6 --out $R/threshold" \
  --command 'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train detect-cv --masks ../shared/data/pad_ufes_20/masks --out runs/lesion_detector --lr 1e-3 --encoder-lr-mult 0.3 --no-balanced --compare resources/models/default.oof.h5' \
  --command '# crop comparison (previous finder, runs/lesion_finder at 10 epochs): lesion-crops, then cv configs/lite2/default.yaml on the crops, then lesion-crop-compare (commands in the card of commit 40e51e2)' \
  --command 'OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lesions.py   # speed' \
  --command 'bash configs/cards/lesion_finder/ship.sh   # this card (figures checked by tests/engine/test_lesion_card.py)'
