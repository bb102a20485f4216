"""Command-line interface: ``rnnattn <command>``. Each ``cmd_<name>.py`` module defines ``add_parser`` and ``run``."""
