FROM busybox
RUN mkdir -p /m && chmod 700 /m && chown 1000 /m
RUN --mount=type=tmpfs,target=/m true
