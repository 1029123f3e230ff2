"""How a model is scored on a task: the torch-side evaluation protocols the task files call."""
