"""The in-memory form every loader produces, and the facts a device needs to reproduce the input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

TABULAR = "tabular"
IMAGE = "image"


@dataclass
class Dataset:
    """Model-ready arrays plus what is needed to rebuild them from raw values on a device.

    `x` holds the values the model is fed (float32): encoded feature vectors for tables, pixel values
    for images. Scaling (normalization, rescaling) is *not* applied here: it is baked into the model.
    """

    x: np.ndarray
    y: np.ndarray  # int64 class indices (classification) or float32 values (regression)
    task: str
    kind: str  # TABULAR or IMAGE
    source: str
    classes: list[str] = field(default_factory=list)
    target: Optional[str] = None
    # Tabular: per-column encoding facts (see features.py). Image: size and colour facts.
    features: Optional[dict[str, Any]] = None
    image: Optional[dict[str, Any]] = None
    # How raw pixel values are scaled inside the model: a fixed factor, or None to adapt a Normalization.
    rescale: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return "image" if self.kind == IMAGE else "features"

    @property
    def num_classes(self) -> int:
        return len(self.classes)
