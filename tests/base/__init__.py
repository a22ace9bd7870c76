"""Tests of nbtools/_base/: the shared vocabulary (option declarations, schemas, prompts, checks)."""
