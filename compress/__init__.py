"""Produces compressed generators: the generator zoo, checkpoints and MAC profiling; data,
metrics and teacher training; and the GAN Compression stages (distill, supernet, search,
finetune, extract, pipeline). No Qt here."""
