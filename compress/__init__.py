"""Produces compressed generators: the generator zoo, checkpoints, MAC profiling, and (later)
teacher training, once-for-all distillation, search, fine-tuning and metrics. No Qt here."""
