"""One training loop; strategies choose parameter groups, frozen parts, losses and task sampling."""
