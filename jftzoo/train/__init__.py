"""Joint fine-tuning: the fusion model, its training modes, and evaluation."""
