# Sourced by common.sh (not run): the loss weights each baseline's own paper uses for its table, per pair.
#
# baseline_flags METHOD TEACHER STUDENT -> the flags of that method's row for that pair (empty: its defaults).
# Sources (at the snapshots this project compares with):
#   RepDistiller  HobbitLong/RepDistiller scripts/run_cifar_distill.sh (b84f547); its parser's -r default is 1.
#   mdistiller    megvii-research/mdistiller mdistiller/engine/cfg.py and configs/ (a08d46f).
#   ReviewKD      dvlab-research/ReviewKD CIFAR-100/script/reviewKD.sh, --kd-loss-weight per pair (cede6ea).
#   OFD           clovaai/overhaul-distillation */train_with_distillation.py: distillation sum / batch / 1000
#                 on CIFAR-100 (line 91), / 10000 on ImageNet (line 179) (76344a8).
baseline_flags() {
  local method="$1" pair="$2 $3"
  case "$method" in
    # KD: RepDistiller's kd command -r 0.1 -a 0.9 (T 4); ImageNet: mdistiller's configs/imagenet/*/kd.yaml
    # TEMPERATURE 1, CE_WEIGHT 0.5, KD_WEIGHT 0.5 (--kd_T here comes after the table's KD_T, so it wins)
    kd)
      case "$pair" in
        "resnet34 resnet18"|"resnet50 MobileNetV1") echo "-r 0.5 -a 0.5 --kd_T 1" ;;
        *) echo "-r 0.1 -a 0.9" ;;
      esac ;;
    # DKD: beta (non-target-class weight) from mdistiller's configs/cifar100/dkd/*.yaml: res56_res20 and
    # res110_res32 BETA 2.0; vgg13_vgg8, wrn40_2_wrn_16_2, wrn40_2_wrn_40_1 and vgg13_mv2 6.0; every other pair
    # (res32x4_res8x4, res32x4_shuv1/2, res50_mv2, wrn40_2_shuv1, pairs without a config) cfg.py's CFG.DKD.BETA
    # 8.0. Its other values (CE_WEIGHT 1, ALPHA 1, T 4, WARMUP 20) are the same for every pair: our defaults.
    # ImageNet: configs/imagenet/r34_r18/dkd.yaml BETA 0.5 and r50_mv1/dkd.yaml BETA 2.0, both T 1.0, WARMUP 1.
    dkd)
      case "$pair" in
        "resnet34 resnet18") echo "--dkd_beta 0.5 --kd_T 1 --dkd_warmup 1" ;;
        "resnet50 MobileNetV1") echo "--dkd_beta 2 --kd_T 1 --dkd_warmup 1" ;;
        "resnet56 resnet20"|"resnet110 resnet32") echo "--dkd_beta 2" ;;
        "vgg13 vgg8"|"wrn_40_2 wrn_16_2"|"wrn_40_2 wrn_40_1"|"vgg13 mobilenetv2") echo "--dkd_beta 6" ;;
        *) echo "--dkd_beta 8" ;;
      esac ;;
    # The other baselines train with their class's own weights (distiller/zoo/*.py: each default names its source:
    # RepDistiller's run_cifar_distill.sh for CC, VID, AB, FT, FSP, NST; mdistiller's cfg.py for KD-SVD, OFD and
    # ReviewKD). A flag is given only where a paper uses another value for a pair:
    # OFD on ImageNet: mdistiller's configs/imagenet/r50_mv1/ofd.yaml FEAT_WEIGHT 0.0001 (OFD's own ImageNet code
    # divides by 10000 for every pair; resnet34 -> resnet18 has no mdistiller config).
    ofd)
      case "$pair" in
        "resnet34 resnet18"|"resnet50 MobileNetV1") echo "-b 0.0001" ;;
      esac ;;
    # ReviewKD: its own reviewKD.sh per pair (resnet32x4 -> shufflev2: 8; resnet56 -> resnet20: 0.6; resnet110 ->
    # resnet32: 1; the other pairs 5, the default). ImageNet: mdistiller's configs/imagenet/r34_r18/reviewkd.yaml
    # 1.0 and r50_mv1/reviewkd.yaml 8.0 (ReviewKD's ImageNet/README.md commands pass the same), with
    # WARMUP_EPOCHS 1 there (20 on CIFAR-100).
    reviewkd)
      case "$pair" in
        "resnet50 MobileNetV1") echo "-b 8 --reviewkd_warmup 1" ;;
        "resnet34 resnet18") echo "-b 1 --reviewkd_warmup 1" ;;
        "resnet32x4 shufflev2") echo "-b 8" ;;
        "resnet56 resnet20") echo "-b 0.6" ;;
        "resnet110 resnet32") echo "-b 1" ;;
      esac ;;
  esac
}
