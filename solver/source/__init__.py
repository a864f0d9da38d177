"""Where a build's inputs come from: registry pulls, OCI layouts, the local context."""
