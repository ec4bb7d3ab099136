"""Held-out evaluation: batched answers to held-out prompts, scored by kept libraries, base vs fine-tuned."""
