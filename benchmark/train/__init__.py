"""Training loop, schedules and checkpoints shared by every method and stage."""
