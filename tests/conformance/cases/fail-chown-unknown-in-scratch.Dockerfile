FROM scratch
COPY --chown=app:app hello.txt /
#conformance: expect=failure
