"""Run-time helpers every command layer uses: device choice, signals, worker processes. No training code."""
