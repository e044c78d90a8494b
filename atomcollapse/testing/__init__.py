"""Test helpers shipped with the package: the model-contract suite every backbone passes."""
