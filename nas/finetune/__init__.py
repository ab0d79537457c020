"""Fine-tuning and transfer of a found (or preset) network: ``python -m nas.finetune``.

A new classifier head when the number of classes differs; the stem and the first K stages frozen
(weights and BatchNorm statistics); the rest trained with a cosine schedule, the backbone at a
smaller learning rate than the head; a checkpoint every epoch; early stopping on the validation
metric; the result exported like a search's ``best/`` plus ``finetune.json`` and ``finetune.png``.
"""

from nas.finetune._config import FinetuneConfig
from nas.finetune._loop import CHECKPOINT, FinetuneError, evaluate, finetune
from nas.finetune._model import Source, freeze_early, load_source, stages, train_mode, with_classes

__all__ = ["CHECKPOINT", "FinetuneConfig", "FinetuneError", "Source", "evaluate", "finetune", "freeze_early",
           "load_source", "stages", "train_mode", "with_classes"]
