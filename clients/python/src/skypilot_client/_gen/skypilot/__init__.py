"""Generated: do not edit."""
