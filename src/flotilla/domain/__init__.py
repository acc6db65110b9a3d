"""Flotilla's types and their state machines. Imports nothing of ours and does no I/O."""
