"""``affectnetplus`` subcommands, one module each (see :mod:`affectnetplus_hf.cli`)."""
