"""Image splits from the hub, and the fallback rule every image task shares: local files first,
then the hub when allowed and reachable, else DataMissingError naming the local fix.
"""
from __future__ import annotations

from pathlib import Path

from loft.core.errors import ConfigError
from tasks.base import DataMissingError
from tasks.vision.sources import HubSource


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
        raise ConfigError(f"{dataset}[{split}]: cannot tell the image/label columns of {dict(features)}; "
                         f"set task.image_column and task.label_column")
    values = rows[label_column]
    if class_names:
        labels = [list(class_names).index(v) if isinstance(v, str) else int(v) for v in values]
    elif values and isinstance(values[0], str):
        raise ConfigError(f"{dataset}[{split}]: string labels in {label_column!r}; list them in task.class_names")
    else:
        labels = [int(v) for v in values]
    domains = [str(d) for d in rows[domain_column]] if domain_column and domain_column in features else None
    return HubSource(rows, image_column, labels, domains)


def hub_or_missing(load, local: Path, fix: str, source: str):
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
