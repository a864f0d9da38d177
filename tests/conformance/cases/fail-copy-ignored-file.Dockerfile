FROM busybox
COPY private.txt /
#conformance: context=ignore
#conformance: expect=failure
