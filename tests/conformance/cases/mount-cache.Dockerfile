FROM busybox
RUN --mount=type=cache,target=/cache echo x > /cache/x && echo done > /out
