"""Admission, turns, retries and results: the orchestration of workers."""
