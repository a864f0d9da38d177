FROM busybox
COPY links/dangling /x
#conformance: expect=failure
