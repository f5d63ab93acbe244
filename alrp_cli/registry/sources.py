"""The official files recipe values are cited from (``Sourced.source`` is ``file:line``).

The first group are files of github.com/kemaloksuz/aLRPLoss at commit 2cfaa8e, the
mmdetection 2.x fork the aLRP and AP Loss results were published with (it also ships
mmdetection's RetinaNet configurations). The ``RS_`` group are files of
github.com/kemaloksuz/RankSortLoss, the fork Rank & Sort Loss was published with (its
``configs/_base_/schedules/schedule_1x.py`` is line for line the one above).
"""

ATSS_CFG = "configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py"
MAXIOU_CFG = "configs/alrp_loss/alrp_loss_retinanet_r50_fpn_100e_coco500.py"
AP_CFG = "configs/alrp_loss/ap_loss_retinanet_r50_fpn_100e_coco500.py"
RETINANET_BASE = "configs/_base_/models/retinanet_r50_fpn.py"
RETINANET_1X = "configs/retinanet/retinanet_r50_fpn_1x_coco.py"
SCHEDULE_1X = "configs/_base_/schedules/schedule_1x.py"
COCO500 = "configs/_base_/datasets/coco500_detection_augm.py"
GETTING_STARTED = "docs/getting_started.md"

# kemaloksuz/RankSortLoss
RS_ATSS_CFG = "configs/ranksort_loss/ranksort_atss_r50_fpn_1x_coco.py"
RS_ATSS_HEAD = "mmdet/models/dense_heads/rank_based_atss_head.py"
RS_COCO = "configs/_base_/datasets/coco_detection.py"
RS_README = "README.md"
