"""Hardware-aware NAS for MobileNetV3-style networks."""

__version__ = "0.1.0"
