"""Ray/MLflow plumbing shared by every pipeline: Ray sessions, tracking, preflight, checkpoints."""
