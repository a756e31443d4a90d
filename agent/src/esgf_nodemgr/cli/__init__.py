"""The ``esgf-nm`` command line."""
