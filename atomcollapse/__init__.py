"""atomcollapse: measure representation collapse and OOD error of adapted atomistic models."""

__version__ = "0.1.0"
