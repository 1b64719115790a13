"""The trainer: data in, a compact Keras model with its preprocessing and an honest evaluation out.

TensorFlow, pandas and scikit-learn are imported inside the functions that need them.
"""

from edgeml.trainer.data import BUILTIN_DATASETS, load_data
from edgeml.trainer.dataset import CLASSIFICATION, REGRESSION, Dataset
from edgeml.trainer.errors import DataError
from edgeml.trainer.features import encode_records
from edgeml.trainer.models import ARCHITECTURES, ModelConfig
from edgeml.trainer.pipeline import TrainResult, train
from edgeml.trainer.training import FitConfig

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_DATASETS",
    "CLASSIFICATION",
    "REGRESSION",
    "DataError",
    "Dataset",
    "FitConfig",
    "ModelConfig",
    "TrainResult",
    "encode_records",
    "load_data",
    "train",
]
