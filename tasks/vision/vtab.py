"""VTAB-1k (Zhai et al. 2019; VPT/NOAH/PSOFT), `task=vtab_<name>`.

`protocol: final` trains on the 1000 examples train800val200 and reports `test`; `protocol:
tune` trains on train800 and reports val200 (for choosing hyperparameters). Local data:
`<data_dir>/vtab/<name>/` with {train800,val200,train800val200,test}.txt list files (NOAH's
vtab-1k release) or {train800,val200,train800val200,test}/<label>/*.png folders
(`prepare_data.py vtab` writes these); `<name>` is the task's short name or VTAB's own (e.g.
flowers102 or oxford_flowers102). Online: the hub's `fw407/vtab-1k_<name>` (PSOFT's copies;
splits train = train800, validation = val200, test), where a `train` split of 1000 rows is
taken as train800val200.
"""
from __future__ import annotations

from pathlib import Path

from loft.core.errors import ConfigError
from tasks.vision.files import find_split, read_split
from tasks.sources import check_source, hub_or_missing
from tasks.vision.hub import hub_split
from tasks.vision.sources import Concat, ImageSource
from tasks.vision.task import ImageClassificationTask


# short name -> (VTAB's own folder name, number of classes); hub: fw407/vtab-1k_<hub>
VTAB = {
    "cifar100": ("cifar", 100, "cifar"), "caltech101": ("caltech101", 102, "caltech101"),
    "dtd": ("dtd", 47, "dtd"), "flowers102": ("oxford_flowers102", 102, "flowers102"),
    "pets": ("oxford_iiit_pet", 37, "pets"), "svhn": ("svhn", 10, "svhn"), "sun397": ("sun397", 397, "sun397"),
    "camelyon": ("patch_camelyon", 2, "patch_camelyon"), "eurosat": ("eurosat", 10, "eurosat"),
    "resisc45": ("resisc45", 45, "resisc45"), "retinopathy": ("diabetic_retinopathy", 5, "retinopathy"),
    "clevr_count": ("clevr_count", 8, "clevr_count"), "clevr_dist": ("clevr_dist", 6, "clevr_distance"),
    "dmlab": ("dmlab", 6, "dmlab"), "kitti": ("kitti", 4, "kitti_distance"),
    "dsprites_loc": ("dsprites_loc", 16, "dsprites_location"), "dsprites_ori": ("dsprites_ori", 16, "dsprites_orientation"),
    "smallnorb_azi": ("smallnorb_azi", 18, "smallnorb_azimuth"), "smallnorb_ele": ("smallnorb_ele", 9, "smallnorb_elevation"),
}
VTAB_SPLITS = {"final": ("train800val200", "test"), "tune": ("train800", "val200")}


def vtab_hub_dataset(vtab_name: str) -> str:
    return f"fw407/vtab-1k_{VTAB[vtab_name][2]}"


def vtab_hub_source(vtab_name: str, split: str) -> ImageSource:
    """A VTAB-1k split from the hub (fw407/vtab-1k_*: train = train800, validation = val200)."""
    dataset = vtab_hub_dataset(vtab_name)
    if split in ("test", "val200"):
        return hub_split(dataset, "test" if split == "test" else "validation")
    train = hub_split(dataset, "train")
    if len(train) >= 1000:  # a copy whose train split already is train800val200
        if split == "train800":
            raise ConfigError(f"{dataset}: its train split has {len(train)} rows (train800val200); "
                             f"protocol=tune needs a separate train800: use the local layout")
        return train
    return train if split == "train800" else Concat([train, hub_split(dataset, "validation")])


class VtabTask(ImageClassificationTask):
    def __init__(self, name: str, vtab_name: str, protocol: str = "final", source: str = "auto", **kwargs):
        if vtab_name not in VTAB:
            raise ConfigError(f"task.vtab_name={vtab_name!r}: one of {sorted(VTAB)}")
        if protocol not in VTAB_SPLITS:
            raise ConfigError(f"task.protocol={protocol!r}: final (train800val200 -> test) or tune (train800 -> val200)")
        check_source(source)
        super().__init__(name, kwargs.pop("num_labels", VTAB[vtab_name][1]), **kwargs)
        self.vtab_name, self.protocol, self.source = vtab_name, protocol, source

    def local_root(self, data_dir: str) -> Path:
        candidates = [Path(data_dir) / "vtab" / n for n in (self.vtab_name, VTAB[self.vtab_name][0])]
        return next((p for p in candidates if p.is_dir()), candidates[0])

    def load_split(self, role: str, data_dir: str) -> ImageSource:
        split = VTAB_SPLITS[self.protocol][0 if role == "train" else 1]
        root = self.local_root(data_dir)
        if self.source != "hub" and find_split(root, split):
            return read_split(root, split)
        fix = (f"`python scripts/prepare_data.py vtab --only {self.vtab_name} --data-dir {data_dir}` (online: "
               f"{vtab_hub_dataset(self.vtab_name)}), or put VTAB-1k's {split}.txt list (NOAH's vtab-1k release) or a "
               f"{split}/<label>/*.png folder under {root}")
        return hub_or_missing(lambda: vtab_hub_source(self.vtab_name, split), root / split, self.source, fix)
