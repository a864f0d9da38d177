FROM busybox
COPY missing.txt /
#conformance: expect=failure
