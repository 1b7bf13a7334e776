"""The ``serve`` stage: real-time endpoints and batch transform."""
