"""inhouse finetune: the corpus builder, LoRA training, the exam, export, and model directories.

Importing this package is light; torch, transformers and peft load inside the functions that use them.
"""
