"""Detection: data, model, assigners, training loop and inference (torchvision-based)."""
