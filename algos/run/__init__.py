"""Run machinery: the training CLI, run directories, videos and the D4RL dataset recipe."""
