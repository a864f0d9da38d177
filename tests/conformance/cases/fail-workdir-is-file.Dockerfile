FROM busybox
WORKDIR /etc/passwd
#conformance: expect=failure
