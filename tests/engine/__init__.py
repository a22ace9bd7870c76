"""Tests of nbtools/_engine/: the online run, the Batch API, gates, retries, failures and cost, over real HTTP."""
