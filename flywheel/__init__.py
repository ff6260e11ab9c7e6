"""The flywheel (`inhouse cycle TEAM`): git → incremental corpus → candidate adapter → exam gate → canary → registry.

It imports only `core`: every stage is an `inhouse` sub-command run as a child process (the corpus builder,
the trainer, the exam, the gateway's registry), so a stage killed with the cycle leaves only what that command
leaves on a kill, and the cycle's own state is one JSON file rewritten atomically after each stage.
"""
