"""The framework-free OAuth 2.1 core: plain values in, plain values out, typed errors."""
