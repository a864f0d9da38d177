FROM busybox
USER nosuchuser
RUN true
#conformance: expect=failure
