"""Tests of `authgate doctor` (src/authgate/doctor)."""
