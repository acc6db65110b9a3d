"""One adapter per agent CLI, behind the `Executor` interface in `base`."""
