__version__ = "0.1.0"

#: The distribution (package-index) name: ``pip install openhud`` installs the import package
#: ``hud`` and the ``hud`` command. The name ``hud`` on the index is the official package.
DIST_NAME = "openhud"
