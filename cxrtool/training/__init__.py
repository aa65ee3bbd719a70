"""One training engine for the three stages: tasks, the loop, checkpoints and resume, distributed helpers."""
