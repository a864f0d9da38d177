FROM busybox
ARG OWNER=1000
COPY --chown=${OWNER}:${OWNER} hello.txt /e/
