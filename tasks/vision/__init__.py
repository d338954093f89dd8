"""Image classification: VTAB-1k (`task=vtab_<name>`), the LoFT paper's image suite
(`task=image_<name>`: cifar100, isic2019, ham10000, diabetic_retinopathy, domainnet) and
Fashion-MNIST from the Debian package (`task=image_fashion_mnist`, the offline real-data check).

    python run.py task=image_fashion_mnist model=tiny_vit method=lora rank=4    (offline, seconds)
    python run.py task=vtab_dtd method=loft_orth_skewgrad rank=8                (ViT-B/16, hub)
    python run.py task=image_ham10000 method=loft rank=16                       (LoFT Table 3)

One job per module: `sources` (the image-source interface), `files` (local layouts), `hub`
(hub splits and the local-then-hub rule), `task` (ImageClassificationTask: batches, loss,
metrics), `vtab`, `suite` and `fashion_mnist` (where each family's splits come from). The task
classes are re-exported so `_target_: tasks.vision.VtabTask` (and the records' configs) keep working.
"""
from tasks.vision.fashion_mnist import FashionMnistTask
from tasks.vision.hub import hub_split
from tasks.vision.suite import HubImageTask
from tasks.vision.task import ImageClassificationTask
from tasks.vision.vtab import VTAB, VTAB_SPLITS, VtabTask, vtab_hub_dataset, vtab_hub_source

__all__ = ["VTAB", "VTAB_SPLITS", "FashionMnistTask", "HubImageTask", "ImageClassificationTask", "VtabTask",
           "hub_split", "vtab_hub_dataset", "vtab_hub_source"]
