"""Sending prompts through the providers' own Batch APIs (``via="batch"``), with re-run = reattach.

OpenAI and xAI (files + batches) and Anthropic (Message Batches). See runner.BatchJobRun for the life
of a run, store.JobStore for how a re-run finds its jobs, and jobs for the user's view of them.
"""

from .jobs import JobInfo, JobList, cancel_job, forget_job, jobs, resend
from .runner import BatchJobRun

__all__ = ["BatchJobRun", "JobInfo", "JobList", "cancel_job", "forget_job", "jobs", "resend"]
