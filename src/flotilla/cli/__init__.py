"""The `fleet` command: parsing and printing, nothing else."""
