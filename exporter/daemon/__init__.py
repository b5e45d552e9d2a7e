"""The daemon: wires config, client, poller, store and web together, and keeps them running.

``run`` starts everything (or runs ``--once``, ``--check-config``, ``--demo``) and shuts it
down; ``reloading`` loads a new config off the event loop, one at a time; ``signals`` turns
SIGHUP/SIGTERM into reloads and stops from the first line of main; ``filewatch`` reloads when
a secret file changes; ``livecheck`` asks CAN about every plan once; ``settings`` are the
flags and environment variables the command line parsed.

May import every layer below it. This package's ``__init__`` stays empty: the command line
imports ``signals`` before anything heavy.
"""
