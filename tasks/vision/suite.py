"""The LoFT paper's image suite (`task=image_<name>`: cifar100, isic2019, ham10000,
diabetic_retinopathy, domainnet): splits `train` / `test` (HAM10000 and Retinopathy also have a
hub validation split, unused, as in the paper's train + test counts). Local data:
`<data_dir>/images/<name>/` with {train,test}.txt, {train,test}/<label>/ or, for DomainNet, the
official <domain>_{train,test}.txt lists; else the task's hub dataset.
"""
from __future__ import annotations

from pathlib import Path

from tasks.base import DataMissingError
from tasks.vision.files import find_split, read_split
from tasks.sources import check_source, hub_or_missing
from tasks.vision.hub import hub_split
from tasks.vision.sources import ImageSource
from tasks.vision.task import ImageClassificationTask


class HubImageTask(ImageClassificationTask):
    """A dataset with train/test splits: local under <data_dir>/images/<dataset>/, else the hub."""

    def __init__(self, name: str, dataset: str, num_labels: int, hub_dataset: str | None = None,
                 train_split: str = "train", eval_split: str = "test", source: str = "auto",
                 image_column: str | None = None, label_column: str | None = None,
                 domain_column: str | None = None, class_names: list[str] | None = None, **kwargs):
        check_source(source)
        super().__init__(name, num_labels, **kwargs)
        self.dataset, self.hub_dataset, self.source = dataset, hub_dataset, source
        self.splits = {"train": train_split, "eval": eval_split}
        self.columns = dict(image_column=image_column, label_column=label_column, domain_column=domain_column,
                            class_names=class_names)

    def load_split(self, role: str, data_dir: str) -> ImageSource:
        split = self.splits[role]
        root = Path(data_dir) / "images" / self.dataset
        if self.source != "hub" and find_split(root, split):
            return read_split(root, split, self.columns["class_names"])
        if self.hub_dataset is None:
            raise DataMissingError(f"{root / split} not found and this task names no hub dataset "
                                   f"(task.hub_dataset); put {split}.txt or {split}/<label>/ under {root}")
        fix = (f"`python scripts/prepare_data.py images --only {self.dataset} --data-dir {data_dir}` (online: "
               f"{self.hub_dataset}), or put {split}.txt or {split}/<label>/*.png under {root}")
        return hub_or_missing(lambda: hub_split(self.hub_dataset, split, **self.columns), root / split,
                              self.source, fix)
