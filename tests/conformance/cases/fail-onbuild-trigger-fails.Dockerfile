FROM busybox AS p
ONBUILD RUN false
FROM p
#conformance: expect=failure
