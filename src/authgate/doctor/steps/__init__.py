"""One module per phase of the client's journey; one small function per step."""
