"""The shared vocabulary below everything else: errors, value checks, prompts, option and schema declarations."""
