FROM busybox
COPY dir /etc/passwd
#conformance: expect=failure
