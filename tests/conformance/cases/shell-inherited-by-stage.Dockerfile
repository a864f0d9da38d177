FROM busybox AS a
SHELL ["/bin/sh", "-xc"]
CMD echo one
FROM a
ENTRYPOINT echo two
SHELL ["/bin/ash", "-c"]
RUN echo three > /out
HEALTHCHECK CMD echo four
