"""Tasks: what each feeds a method at fine-tuning and evaluation time, and how it is scored."""
