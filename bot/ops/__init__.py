"""What running the process needs besides the bot itself: the heartbeat and healthcheck (:mod:`.health`), the
Prometheus metrics (:mod:`.metrics`), fetching the weights and presets (:mod:`.assets`), and terminal output
(:mod:`.terminal`)."""
