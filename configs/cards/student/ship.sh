#!/usr/bin/env bash
# Renders resources/models/student.{dmvb,md,cv.json,oof.h5} from the runs named below (run from the repo root
# once they exist: they are not in git). Sections that are not written yet are left out.
set -e
cd "$(dirname "$0")/../../.."
ABL=(--ablation "Teacher: the default (Lite2, D+B+A, LSM, CIM; 1+2x3 layers, 256 px)=runs/lite2_cam_mask")
ABL+=(--ablation "Student (this model; Lite2, 1+1x3 layers, 192 px)=runs/lite2_student")
SEC=()
for part in table3 reading; do
  [ -f "configs/cards/student/$part.md" ] && SEC+=(--section "$(head -1 "configs/cards/student/$part.title")=configs/cards/student/$part.md")
done
.venv/bin/dermviewer-train ship runs/lite2_student --name student --model-name dermimitformer-lite2-ctx-pad20-student \
  --title "dermimitformer-lite2-ctx-pad20-student: the default model distilled for slow machines" \
  --command "$(printf '%s\n' \
    'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/default_cam_mask.yaml --out runs/lite2_cam_mask   # the teacher (default.md)' \
    'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/student.yaml --out runs/lite2_student   # this model' \
    '.venv/bin/python benchmarks/bench_shipped_models.py --table3 configs/cards/student/table3.md   # speed and the trade-off table' \
    'bash configs/cards/student/ship.sh   # this card (figures checked by tests/training/test_model_card.py)')" \
  --description "A SkinDistilViT-style student (Sousa & Ambrosio, 2023) of the default model for slow machines: the same DermImitFormer heads (disease, body part, attributes; LSM K=8, CIM) with the optional clinical context on the same ImageNet EfficientNet-Lite2 stem, with one transformer layer per head instead of two and a 192 px input instead of 256 (6x6 tokens instead of 8x8; the CNN is most of the cost). In every fold it is seeded from that fold's teacher (kept layers copied, position embedding resampled) and trained with the task loss plus 0.5 x soft cross-entropy to the teacher at T = 2, on the same folds and with the same recipe (CNN frozen below its head convolution, cached views; the teacher's logits are computed once per fold on each epoch's view at the teacher's 256 px and with that epoch's clinical context, training/distill_cache.py), so its CV figures compare one to one with the teacher's. The teacher's mask losses are not used. The final student is distilled from the shipped default on all 666 photos. Pick it in the app under Model > Bundled models, or start with dermviewer --model student." \
  "${ABL[@]}" "${SEC[@]}" \
  --failure-mode "Everything in the default model's card (default.md) applies: rare malignant classes (SCC 28, MEL 35 photos) are seldom recalled, probabilities are over-confident, body part and attributes are weak." \
  --failure-mode "At 192 px it sees less detail than the default, and it was not trained with the mask losses: prefer the default wherever its speed is acceptable."
