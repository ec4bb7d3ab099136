"""Headless fine-tuning backend: data, templates, training, multi-GPU sync, jobs, planning.

Usable without the studio: `python -m trainer_backend --help`.
"""
