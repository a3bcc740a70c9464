"""The Nagios role: objects rendered from the stack, the daemon run for real, its state read
back."""
