"""The phases of a rotation, one module each; ``step`` holds what a phase edits and returns.

Idle -> Staging -> RollingOut -> Verifying -> CollectingGarbage -> Idle, with
RollingOut or Verifying -> RollingBack -> Idle when the new version fails.
"""
