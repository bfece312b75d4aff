"""CSV files -> model-ready arrays, one module per job: reading files (reading), column types
and their fitted encoders (columns), the stored preprocessing (preprocessing), splits and
batches (splits), and the path from the config's `data` section to datasets (loading).

Every problem names the file, the line (header = line 1) and the column; all problems in a
file are listed together (up to a limit)."""

from .columns import detect_type, embedding_dim
from .loading import TrainingData, load_for_eval, load_for_predict, load_training_data
from .preprocessing import Dataset, Preprocessing
from .reading import CHUNK_ROWS, CSV_OPTIONS, read_csv
from .splits import batches, split_indices

__all__ = [
    "CHUNK_ROWS", "CSV_OPTIONS", "Dataset", "Preprocessing", "TrainingData", "batches",
    "detect_type", "embedding_dim", "load_for_eval", "load_for_predict",
    "load_training_data", "read_csv", "split_indices",
]
