"""The parts of ``%tfserve``, one job each; :mod:`jupyter_tfserve.notebook.magics` assembles them.

``quoting`` splits a line into commands and tokens, ``grammar`` declares the
subcommands and their flags, ``server_options`` the settings of a server the
magic starts in this kernel, ``commands`` runs each subcommand, ``views``
renders the answers, ``saved_models`` reads SavedModels on disk and ``errors``
says what went wrong in one line.
"""
