"""What tests use and are not tests: local servers that answer as providers do, provider error replies, kernel
and browser drivers. Imported as ``tests.support.<module>``."""
