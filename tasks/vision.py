"""Image classification: VTAB-1k (`task=vtab_<name>`), the LoFT paper's image suite
(`task=image_<name>`: cifar100, isic2019, ham10000, diabetic_retinopathy, domainnet) and
Fashion-MNIST from the Debian package (`task=image_fashion_mnist`, the offline real-data check).

    python run.py task=image_fashion_mnist model=tiny_vit method=lora rank=4    (offline, seconds)
    python run.py task=vtab_dtd method=loft_orth_skewgrad rank=8                (ViT-B/16, hub)
    python run.py task=image_ham10000 method=loft rank=16                       (LoFT Table 3)

Features:
- Preprocessing with the model's own image processor (resize, rescale, normalise; PIL backend,
  no torchvision), a batch at a time; grey or RGBA images are converted to RGB first. No
  augmentation (neither paper states one).
- Loss: cross-entropy of the classifier (head trained in full at trainer.head_lr). Metric:
  top-1 `accuracy` on the evaluation split; with per-example domains (DomainNet) also one
  accuracy per domain (`clipart`, ..., `sketch`: LoFT Table 18).
- VTAB-1k protocol (Zhai et al. 2019; VPT/NOAH/PSOFT): `protocol: final` trains on the 1000
  examples train800val200 and reports `test`; `protocol: tune` trains on train800 and reports
  val200 (for choosing hyperparameters). Local data: `<data_dir>/vtab/<name>/` with
  {train800,val200,train800val200,test}.txt list files (NOAH's vtab-1k release) or
  {train800,val200,train800val200,test}/<label>/*.png folders (`prepare_data.py vtab` writes
  these); `<name>` is the task's short name or VTAB's own (e.g. flowers102 or oxford_flowers102).
  Online: the hub's `fw407/vtab-1k_<name>` (PSOFT's copies; splits train = train800,
  validation = val200, test), where a `train` split of 1000 rows is taken as train800val200.
- LoFT image suite: splits `train` / `test` (HAM10000 and Retinopathy also have a hub
  validation split, unused, as in the paper's train + test counts). Local data:
  `<data_dir>/images/<name>/` with {train,test}.txt, {train,test}/<label>/ or, for DomainNet,
  the official <domain>_{train,test}.txt lists.
- Fashion-MNIST: the Debian package `dataset-fashion-mnist` (files under
  /usr/share/datasets/fashion-mnist/, `task.folder`); train 60000 / test 10000.
- Subsets (`max_train_samples`, `eval_limit`) are drawn with a fixed seed (`subset_seed`), the
  same for every run: many sources are sorted by class, so a prefix would be one class.
- Checkpoint selection: `selection: last` (default: the protocols above report the last
  checkpoint) or `half` (PSOFT's GLUE protocol on the evaluation split, tasks/glue.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tasks.base import DataMissingError, ModelBundle, Task
from loft.train.selection import HalfSplit
from tasks.glue import SelectionTask
from tasks.vision_data import (FASHION_MNIST_FILES, Concat, HubSource, ImageSource, fashion_mnist, find_split,
                               random_subset, read_split)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FIX = "apt-get install -y dataset-fashion-mnist"


class ImageClassificationTask(SelectionTask):
    """Shared by every image task: a subclass provides `load_split(role, data_dir)` for
    role "train" or "eval", returning an ImageSource."""
    model_kinds = ("image_cls",)

    name = "image"

    def __init__(self, name: str, num_labels: int, max_train_samples: int | None = None,
                 eval_limit: int | None = None, eval_batch_size: int = 64, subset_seed: int = 0,
                 selection: str = "last", eval_every="epoch", selection_seed: int = 0):
        self.name, self.num_labels = name, int(num_labels)
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.eval_batch_size, self.subset_seed = int(eval_batch_size), int(subset_seed)
        self.halves = HalfSplit(selection, eval_every, selection_seed)

    def model_args(self) -> dict:
        return {"num_labels": self.num_labels}

    def load_split(self, role: str, data_dir: str) -> ImageSource:
        raise NotImplementedError

    # --- data --------------------------------------------------------------------------

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.processor = bundle.tokenizer  # the image processor travels in the tokenizer slot
        if self.processor is None or not callable(self.processor):
            raise ValueError(f"task {self.name} needs an image model (model=tiny_vit or vit_base_patch16_224_in21k)")
        self.train = random_subset(self.load_split("train", data_dir), self.max_train_samples, self.subset_seed)
        self.eval = random_subset(self.load_split("eval", data_dir), self.eval_limit, self.subset_seed + 1)
        for role, source in (("train", self.train), ("eval", self.eval)):
            if len(source) == 0:
                raise ValueError(f"{self.name}: the {role} split is empty")
            if source.labels.min() < 0 or source.labels.max() >= self.num_labels:
                raise ValueError(f"{self.name}: {role} labels span [{source.labels.min()}, {source.labels.max()}] "
                                 f"but the task has {self.num_labels} classes")
        self.halves.split(len(self.eval))

    def pixels(self, source: ImageSource, idx) -> torch.Tensor:
        images = [img if img.mode == "RGB" else img.convert("RGB") for img in source.images(idx)]
        return self.processor(images=images, return_tensors="pt")["pixel_values"]

    def num_train_examples(self) -> int:
        return len(self.train)

    def train_batches(self, micro_batch_size: int, epoch: int, seed: int):
        order = np.random.default_rng([seed, epoch]).permutation(len(self.train))
        for start in range(0, len(order), micro_batch_size):
            idx = order[start:start + micro_batch_size]
            yield {"pixel_values": self.pixels(self.train, idx), "labels": torch.from_numpy(self.train.labels[idx])}

    # --- loss and metrics --------------------------------------------------------------

    def loss(self, model, batch):
        p = next(model.parameters())
        return model(pixel_values=batch["pixel_values"].to(p.device, p.dtype), labels=batch["labels"].to(p.device)).loss

    @torch.no_grad()
    def predict(self, model, idx) -> np.ndarray:
        p = next(model.parameters())
        was_training = model.training
        model.eval()
        out = []
        try:
            for start in range(0, len(idx), self.eval_batch_size):
                pixel_values = self.pixels(self.eval, idx[start:start + self.eval_batch_size])
                out.append(model(pixel_values=pixel_values.to(p.device, p.dtype)).logits.argmax(-1).cpu())
        finally:
            model.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)

    def metrics(self, model, idx) -> dict[str, float]:
        idx = np.asarray(idx, dtype=np.int64)
        correct = self.predict(model, idx) == self.eval.labels[idx]
        metrics = {"accuracy": float(correct.mean())}
        if self.eval.domains is not None:  # DomainNet: one accuracy per domain (LoFT Table 18)
            domains = np.asarray(self.eval.domains)[idx]
            for domain in sorted(set(domains)):
                metrics[str(domain)] = float(correct[domains == domain].mean())
        return metrics

    def _selection_score(self, model, idx) -> float:
        return self.metrics(model, idx)["accuracy"]

    def evaluate(self, model) -> dict[str, float]:
        metrics = self.metrics(model, self.halves.report_idx)  # half: the loop left the best checkpoint
        return {**metrics, "eval_examples": float(len(self.halves.report_idx))}


# --- hub datasets ----------------------------------------------------------------------

def hub_split(dataset: str, split: str, image_column: str | None = None, label_column: str | None = None,
              domain_column: str | None = None, class_names: list[str] | None = None) -> HubSource:
    """One split of a hub dataset; columns found from its features when not given (the first
    Image column; the first ClassLabel column, else `label`)."""
    import datasets

    rows = datasets.load_dataset(dataset, split=split)
    features = rows.features
    image_column = image_column or next((k for k, f in features.items() if isinstance(f, datasets.Image)), None)
    label_column = label_column or next((k for k, f in features.items() if isinstance(f, datasets.ClassLabel)),
                                        "label")
    if image_column is None or label_column not in features:
        raise ValueError(f"{dataset}[{split}]: cannot tell the image/label columns of {dict(features)}; "
                         f"set task.image_column and task.label_column")
    values = rows[label_column]
    if class_names:
        labels = [list(class_names).index(v) if isinstance(v, str) else int(v) for v in values]
    elif values and isinstance(values[0], str):
        raise ValueError(f"{dataset}[{split}]: string labels in {label_column!r}; list them in task.class_names")
    else:
        labels = [int(v) for v in values]
    domains = [str(d) for d in rows[domain_column]] if domain_column and domain_column in features else None
    return HubSource(rows, image_column, labels, domains)


def _hub_or_missing(load, local: Path, fix: str, source: str):
    """`load()` from the hub when allowed and reachable, else DataMissingError naming `fix`."""
    why = "hub not tried (source=local)"
    if source != "local":
        from loft.core.hub import hub_reachable

        why = "hub unreachable"
        if hub_reachable():
            try:
                return load()
            except Exception as err:  # a hub outage or a renamed dataset: still name the local fix
                why = f"hub failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    raise DataMissingError(f"{local} not found ({why}). Fix: {fix}")


# --- VTAB-1k ---------------------------------------------------------------------------

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
            raise ValueError(f"{dataset}: its train split has {len(train)} rows (train800val200); "
                             f"protocol=tune needs a separate train800: use the local layout")
        return train
    return train if split == "train800" else Concat([train, hub_split(dataset, "validation")])


class VtabTask(ImageClassificationTask):
    def __init__(self, name: str, vtab_name: str, protocol: str = "final", source: str = "auto", **kwargs):
        if vtab_name not in VTAB:
            raise ValueError(f"task.vtab_name={vtab_name!r}: one of {sorted(VTAB)}")
        if protocol not in VTAB_SPLITS:
            raise ValueError(f"task.protocol={protocol!r}: final (train800val200 -> test) or tune (train800 -> val200)")
        if source not in ("auto", "local", "hub"):
            raise ValueError(f"task.source={source!r}: use auto, local or hub")
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
        return _hub_or_missing(lambda: vtab_hub_source(self.vtab_name, split), root / split, fix, self.source)


# --- the LoFT paper's image suite ------------------------------------------------------

class HubImageTask(ImageClassificationTask):
    """A dataset with train/test splits: local under <data_dir>/images/<dataset>/, else the hub."""

    def __init__(self, name: str, dataset: str, num_labels: int, hub_dataset: str | None = None,
                 train_split: str = "train", eval_split: str = "test", source: str = "auto",
                 image_column: str | None = None, label_column: str | None = None,
                 domain_column: str | None = None, class_names: list[str] | None = None, **kwargs):
        if source not in ("auto", "local", "hub"):
            raise ValueError(f"task.source={source!r}: use auto, local or hub")
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
        return _hub_or_missing(lambda: hub_split(self.hub_dataset, split, **self.columns), root / split, fix,
                               self.source)


class FashionMnistTask(ImageClassificationTask):
    """Fashion-MNIST (10 classes, 28 x 28 grey) from the Debian package's IDX files."""

    def __init__(self, name: str = "image_fashion_mnist", folder: str = FASHION_MNIST_DIR, **kwargs):
        super().__init__(name, kwargs.pop("num_labels", 10), **kwargs)
        self.folder = Path(folder)

    def load_split(self, role: str, data_dir: str) -> ImageSource:
        split = "train" if role == "train" else "test"
        missing = [f for f in FASHION_MNIST_FILES[split] if not (self.folder / f).is_file()]
        if missing:
            raise DataMissingError(f"Fashion-MNIST files {missing} not found in {self.folder}. Fix: "
                                   f"`{FASHION_MNIST_FIX}` (Debian/Ubuntu, as root), or set task.folder to a "
                                   f"folder holding {', '.join(FASHION_MNIST_FILES[split])}")
        return fashion_mnist(self.folder, split)
