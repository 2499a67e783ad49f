"""Generated from proto/skypilot/v1 by scripts/generate.sh: do not edit.

The modules live in skypilot_client._gen.skypilot.v1 (their imports are rewritten
there), so the package claims no top-level `skypilot` name. google.longrunning and
google.rpc come from the googleapis-common-protos package.
"""
