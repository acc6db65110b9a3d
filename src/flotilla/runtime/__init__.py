"""Starting, watching and stopping agent processes so that agents outlive the daemon.

Knows nothing of workflows, the store or agents' output formats: it takes a
`Command` and gives back a `ProcessIdentity` plus files in an attempt folder.
"""

from flotilla.runtime.launcher import launch_detached
from flotilla.runtime.pidfd import exit_waiter
from flotilla.runtime.process import ProcessIdentity, TreeUsage, is_alive, kill_tree, tree_usage
from flotilla.runtime.tailer import OutputTail, read_exit
from flotilla.runtime.tmux import TmuxSession

__all__ = [
    "OutputTail",
    "ProcessIdentity",
    "TmuxSession",
    "TreeUsage",
    "exit_waiter",
    "is_alive",
    "kill_tree",
    "launch_detached",
    "read_exit",
    "tree_usage",
]
