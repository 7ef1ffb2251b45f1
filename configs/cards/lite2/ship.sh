#!/usr/bin/env bash
# Renders resources/models/default.{dmvb,md,cv.json,oof.h5} from the runs named below (run from the repo root
# once they exist: they are not in git). Every section file is written by the command that measured it.
# The shipped default is lite2_cam_mask (configs/lite2/default_cam_mask.yaml: the Lite2 recipe plus the LSM-
# and CAM-to-mask losses); lite2_default is the recipe without them, read from its landed metrics file (6c7b00a).
set -e
cd "$(dirname "$0")/../../.."
C=configs/cards/lite2
R=runs/lite2_cam_mask
mkdir -p runs/prev_default && git show 03d831e:resources/models/default.cv.json > runs/prev_default/metrics.json   # the Lite0 default, as landed
mkdir -p runs/lite2_default && git show 6c7b00a:resources/models/default.cv.json > runs/lite2_default/metrics.json   # the Lite2 default without the mask loss, as landed
ABL=(--ablation "EfficientNet-Lite0 classifier (floor), same recipe=runs/lite2_floor_lite0")
ABL+=(--ablation "EfficientNet-Lite2 classifier (floor), same recipe=runs/lite2_floor_lite2")
ABL+=(--ablation "EfficientNet-Lite0 classifier, Lite stages 5-6 fine-tuned too (deeper than this model's fine-tune)=runs/lite2_s5_floor_lite0")
ABL+=(--ablation "EfficientNet-Lite2 classifier, Lite stages 5-6 fine-tuned too (deeper than this model's fine-tune)=runs/lite2_s5_floor_lite2")
[ -f runs/lite2_s5_lsm_mask/metrics.json ] && ABL+=(--ablation "DermImitFormer-Lite2 + LSM-to-mask loss, Lite stages 5-6 fine-tuned too (not shipped)=runs/lite2_s5_lsm_mask")
[ -f runs/lite2_s5_lsm_mask_reg/metrics.json ] && ABL+=(--ablation "The same, heads regularised harder (dropout and stochastic depth 0.3, weight decay 0.1; not shipped)=runs/lite2_s5_lsm_mask_reg")
for s in 224 288; do
  [ -f runs/lite2_size${s}_cam_mask/metrics.json ] && ABL+=(--ablation "This model's recipe at ${s} px input (not shipped)=runs/lite2_size${s}_cam_mask")
done
[ -f runs/prev_default/metrics.json ] && ABL+=(--ablation "Previous default: DermImitFormer-Lite0 hybrid, 160 px, fine-tuned from stage 2 (its own recipe)=runs/prev_default")
for row in "D=d" "D+LSM=d_lsm" "D+B+LSM, concatenation=d_b_lsm_concat" "D+A+LSM, concatenation=d_a_lsm_concat" "D+B+A+LSM, concatenation=d_b_a_lsm_concat"; do
  [ -f runs/lite2_ablation_${row#*=}/metrics.json ] && ABL+=(--ablation "Table 1 row ${row%%=*}, Lite2 recipe, no mask loss=runs/lite2_ablation_${row#*=}")
done
ABL+=(--ablation "Table 1 row D+B+A+LSM+CIM, Lite2 recipe, no mask loss (the previous default, as landed)=runs/lite2_default")
[ -f runs/lite2_lsm_mask/metrics.json ] && ABL+=(--ablation "D+B+A+LSM+CIM + LSM-to-mask loss (not shipped)=runs/lite2_lsm_mask")
ABL+=(--ablation "D+B+A+LSM+CIM + LSM- and CAM-to-mask losses: photo only (this model)=$R")
SEC=()
[ -f $R/context_cv/context_cv.md ] && SEC+=(--section "Photo only vs photo plus clinical context (same fold models)=$R/context_cv/context_cv.md")
[ -f $R/localisation/localisation.md ] && SEC+=(--section "Where the model looks, against the lesion masks (each fold model on its own test fold)=$R/localisation/localisation.md")
[ -f runs/lite2_robustness/table5.md ] && SEC+=(--section "Robustness (Table 5 form; each fold model on its own test fold, clean and corrupted)=runs/lite2_robustness/table5.md")
[ -f runs/lite2_ensembles/ensembles.md ] && SEC+=(--section "Ensembles of the CV runs (the CNN/detection paper's sum of probabilities, of each run's out-of-fold predictions on the same folds)=runs/lite2_ensembles/ensembles.md")
[ -f $C/localisation_why.md ] && SEC+=(--section "Why the Grad-CAM misses, where it does=$C/localisation_why.md")
[ -f $C/speed.md ] && SEC+=(--section "Speed on this 2-core CPU=$C/speed.md")
[ -f $C/reading.md ] && SEC+=(--section "Reading of the results and the targets=$C/reading.md")
.venv/bin/dermviewer-train ship $R --name default --model-name dermimitformer-lite2-ctx-pad20 \
  --title "dermimitformer-lite2-ctx-pad20: DermImitFormer heads on the whole EfficientNet-Lite2, with optional clinical context (CPU default)" \
  --command "$(printf '%s\n' \
    'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/default_cam_mask.yaml --out runs/lite2_cam_mask   # this model' \
    'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/default_lsm_mask.yaml --out runs/lite2_lsm_mask   # LSM-to-mask loss only' \
    'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/default.yaml --out runs/lite2_default   # no mask loss' \
    'for c in stages5_floor_lite0 stages5_floor_lite2 stages5_lsm_mask stages5_lsm_mask_reg; do OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/explore/$c.yaml --out runs/lite2_s5_${c#stages5_}; done' \
    'for s in 224 288; do OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/explore/size${s}_cam_mask.yaml --out runs/lite2_size${s}_cam_mask; done' \
    '.venv/bin/dermviewer-train ensemble-oof runs/lite2_cam_mask runs/lite2_s5_floor_lite0 runs/lite2_s5_floor_lite2 runs/lite2_s5_lsm_mask --out runs/lite2_ensembles' \
    'for f in d d_lsm d_b_lsm_concat d_a_lsm_concat d_b_a_lsm_concat; do OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/ablation/$f.yaml --out runs/lite2_ablation_$f; done' \
    'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/floor_lite0.yaml --out runs/lite2_floor_lite0' \
    'OMP_NUM_THREADS=1 .venv/bin/dermviewer-train cv configs/lite2/floor_lite2.yaml --out runs/lite2_floor_lite2' \
    '.venv/bin/dermviewer-train context-cv runs/lite2_cam_mask' \
    'for r in lite2_cam_mask lite2_lsm_mask; do .venv/bin/dermviewer-train localisation-cv runs/$r --masks ../shared/data/pad_ufes_20/masks --threads 1; done' \
    '.venv/bin/python configs/cards/lite2/localisation_why.py runs/lite2_cam_mask runs/lite2_lsm_mask' \
    '.venv/bin/dermviewer-train robustness-cv configs/lite2/default_cam_mask.yaml --out runs/lite2_robustness --run "shipped (DermImitFormer-Lite2, LSM- and CAM-to-mask)=runs/lite2_cam_mask" --run "EfficientNet-Lite2 floor=runs/lite2_floor_lite2"' \
    '.venv/bin/python benchmarks/bench_shipped_models.py --models resources/models/default.dmvb --photos 12 --repeats 20   # latency' \
    'bash configs/cards/lite2/ship.sh   # this card (figures checked by tests/training/test_model_card.py)')" \
  --description "The app's default model: DermImitFormer (Zhou et al., MICCAI 2023) task heads for disease, body part and attributes with the Lesion Selection Module (K=8 of 64 tokens) and the Cross-Interaction Module, on the whole ImageNet-pretrained EfficientNet-Lite2 (its 1280-channel features, one token per 32 px at 256 px input; 1 shared + 2x3 head transformer layers of width 192), with the patient's age, body site and six reported attributes fused into the disease embedding by FiLM when they are given (every field optional; none given = the photo-only answer, exactly). Trained on CPU by this project's training package with the CNN frozen below its head convolution (cached augmented views, see the config), and, on the 640 photos that have a hand-drawn lesion mask, two auxiliary losses that pull the LSM's token scores and the true class's Grad-CAM (HiResCAM of the learnt layers' input) onto the lesion (training/lsm_mask_loss.py); the final model is fitted on all 666 photos with the recipe that was cross-validated. Disease figures in the table below are photo only; the clinical-context figures are in their own section." \
  "${ABL[@]}" "${SEC[@]}" \
  --failure-mode "Rare classes: out-of-fold recall is 39% for squamous cell carcinoma (11 of 28 photos; 8 called actinic keratosis, 6 basal cell carcinoma) and 57% for melanoma (20 of 35), and only 15% of the photos it calls SCC are SCC (32 of its SCC calls are BCC). Do not rely on it to flag either." \
  --failure-mode "Basal cell carcinoma is recalled 52% of the time (98 of 187): 35 are called actinic keratosis and 32 SCC. Seborrheic keratosis 47% (53 of 112), confused with nevi (26), actinic keratosis (13) and SCC (8)." \
  --failure-mode "Malignant vs benign (sum of the malignant class probabilities >= 0.5), photo only: sensitivity 76.0 ± 3.7%, specificity 77.7 ± 2.6% over folds; about one malignant lesion in four is called benign." \
  --failure-mode "Probabilities are over-confident (ECE 9.9 ± 2.6% over folds): read them as a ranking, not as calibrated risks." \
  --failure-mode "Body part from a close-up photo is weak (top-1 34% over 14 regions); give the body site as context instead." \
  --failure-mode "Where it looks: on actinic keratosis photos the Grad-CAM peak lies on the outlined lesion only 68% of the time (it often points at neighbouring sun-damaged skin; the masks outline one lesion), and on lesions under 5% of the photo 72%; clinicians' pen circles and other spots near the lesion draw it too (see the localisation sections)." \
  --failure-mode "The clinical context was learnt from one clinic's records; what a patient reports (itch, growth, bleeding...) is fused as given, and an answer that contradicts the photo moves the differential." \
  --failure-mode "Trained on one Brazilian clinic's smartphone photos (mostly Fitzpatrick I-III); dermoscopic images, other skin types, other devices and diseases outside the six classes are out of scope: the model always answers with one of the six."
