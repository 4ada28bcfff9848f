"""The elyra-sidecar log follower: streams an Elyra step's script log to stdout and mirrors it to S3."""
