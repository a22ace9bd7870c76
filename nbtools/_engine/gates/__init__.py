"""What admits each online request, all asked the same three things (gate.Gate): pacing, the spending cap, the
concurrency limiter, the server's budget and the adaptive controller."""
