#!/usr/bin/env bash
# Renders resources/models/lesion_finder.{onnx,md,cv.json} from the runs named below (run from the repo root once
# they exist: runs/ is not in git). Every section file is written by the command that measured it.
set -e
cd "$(dirname "$0")/../../.."
C=configs/cards/lesion_finder
SEC=()
[ -f runs/lesion_finder/no_tta/lesion_cv.md ] && SEC+=(--section "Without the mirror average and hole filling (same fold models)=runs/lesion_finder/no_tta/lesion_cv.md")
[ -f runs/lite2_crop/crop_compare/crop_compare.md ] && SEC+=(--section "Whole photo, lesion crop or both (disease classifier, same folds)=runs/lite2_crop/crop_compare/crop_compare.md")
[ -f $C/speed.md ] && SEC+=(--section "Speed on this 2-core CPU=$C/speed.md")
[ -f $C/reading.md ] && SEC+=(--section "Reading of the results=$C/reading.md")
.venv/bin/python -m training.lesion_card runs/lesion_finder --out resources/models "${SEC[@]}" \
  --command 'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train lesion-cv --masks ../shared/data/pad_ufes_20/masks --out runs/lesion_finder --size 160 --epochs 10 --threads 1' \
  --command '.venv/bin/dermviewer-train lesion-cv --masks ../shared/data/pad_ufes_20/masks --rescore runs/lesion_finder --no-tta --keep-holes --out runs/lesion_finder/no_tta' \
  --command '.venv/bin/dermviewer-train lesion-crops runs/lesion_finder --out runs/lesion_crops' \
  --command 'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/default.yaml --set data.spec=runs/lesion_crops/spec.yaml --out runs/lite2_crop' \
  --command '.venv/bin/dermviewer-train lesion-crop-compare resources/models/default.oof.h5 runs/lite2_crop --lesion-run runs/lesion_finder --originals ../shared/data/pad_ufes_20/originals' \
  --command 'OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lesions.py   # speed' \
  --command 'bash configs/cards/lesion_finder/ship.sh   # this card (figures checked by tests/engine/test_lesion_card.py)'
