"""The package's version, declared once: pyproject.toml reads it (hatch), every layer imports it.

A leaf module, so that the engine's hosts can name the version without importing the
package root (whose facade reaches every layer).
"""

__version__ = "0.1.0"
