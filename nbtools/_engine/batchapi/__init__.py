"""Sending prompts through the providers' own Batch APIs (``via="batch"``), with re-run = reattach.

OpenAI and xAI (files + batches) and Anthropic (Message Batches). See run.BatchAPIRun for the life
of a run, and store.JobStore for how a re-run finds its jobs; nbtools._jobs is the user's view of them.
"""
