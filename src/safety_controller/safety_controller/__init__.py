"""The only cmd_vel publisher: limits, collision guard, latched e-stop, watchdogs."""
