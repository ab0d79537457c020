"""Weight-sharing supernet: elastic layers, ``supernet(x, arch)``, extraction, BN recalibration,
checkpoints."""

from nas.supernet._bn_calibration import CalibrationStats, calibrated_subnet, recalibrate_bn
from nas.supernet._checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    load_supernet,
    save_checkpoint,
    write_atomically,
)
from nas.blocks import (  # the elastic layers live with the block kinds; re-exported here
    ElasticBatchNorm2d,
    ElasticBiasConv,
    ElasticConv,
    ElasticDepthwise,
    ElasticLinear,
    ElasticSqueezeExcite,
    ElasticUIB,
    importance_order,
)
from nas.supernet._supernet import ElasticBlock, ElasticConvBN, KindChoice, Supernet, extract, max_specs, reorder_channels

__all__ = [
    "CHECKPOINT_NAME",
    "CalibrationStats",
    "Checkpoint",
    "CheckpointError",
    "ElasticBatchNorm2d",
    "ElasticBiasConv",
    "ElasticBlock",
    "ElasticConv",
    "ElasticConvBN",
    "ElasticDepthwise",
    "ElasticLinear",
    "ElasticSqueezeExcite",
    "ElasticUIB",
    "KindChoice",
    "Supernet",
    "calibrated_subnet",
    "checkpoint_path",
    "extract",
    "importance_order",
    "load_checkpoint",
    "load_supernet",
    "max_specs",
    "recalibrate_bn",
    "reorder_channels",
    "save_checkpoint",
    "write_atomically",
]
