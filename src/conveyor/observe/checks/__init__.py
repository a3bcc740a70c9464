"""The Nagios role: objects rendered from the stack, the daemon run for real, its state read
back.

    targets.py   what to check for a project (pure: its release, ports, service addresses)
    nagios.py    Nagios 4 configured, validated (`nagios4 -v`), supervised, reloaded; its
                 status file, its notification spool, its external command file
    status.py    the status file parsed (pure)
    commands.py  external commands (downtimes) worded (pure)
    plugin.py    Conveyor's own Nagios plugin (HAProxy backend, Docker, memory) and the
                 notification command; standard library only, run by Nagios's user
"""
