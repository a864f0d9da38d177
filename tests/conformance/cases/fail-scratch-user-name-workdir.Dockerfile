FROM scratch
USER app
WORKDIR /x
#conformance: expect=failure
