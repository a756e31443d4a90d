"""See the package docstring of esgf_nodemgr."""
