"""Backbones behind one small interface, heads, and checkpoints."""
