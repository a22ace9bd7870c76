"""The package's version, in one place: the package exports it, and run manifests record it."""

VERSION = "0.1.0"
