"""Audio for training and testing compressor models."""
